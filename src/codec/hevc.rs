//! H.265 / HEVC: the decoder configuration record (ISO/IEC 14496-15 §8.3.3) and
//! slice_segment_header() (H.265 §7.3.6.1), parsed to find where slice segment data starts.

use super::avc::length_prefixed;
use super::bits::{ceil_log2, BitReader};
use super::hevc_ps::{parse_pps, parse_sps, st_ref_pic_set, Pps, Sps};
use super::Parse;

/// `sps_seq_parameter_set_id` range (§7.4.3.2.1).
const MAX_SPS: usize = 16;
/// `pps_pic_parameter_set_id` range (§7.4.3.3.1).
const MAX_PPS: usize = 64;
/// `num_ref_idx_lX_active_minus1` range (§7.4.7.1).
const MAX_REF_IDX: u32 = 14;
/// Cap on num_long_term_sps + num_long_term_pics (both bounded by the DPB size, ≤ 16).
const MAX_LT_PICS: u32 = 32;
/// `slice_segment_header_extension_length` range.
const MAX_HEADER_EXTENSION: u32 = 256;

/// NAL unit types (H.265 Table 7-1).
const BLA_W_LP: u8 = 16;
const IDR_W_RADL: u8 = 19;
const IDR_N_LP: u8 = 20;
const CRA_NUT: u8 = 21;
const RSV_IRAP_VCL23: u8 = 23;
const SPS_NUT: u8 = 33;
const PPS_NUT: u8 = 34;

/// Parameter sets of one HEVC track (layer 0).
#[derive(Clone, Debug)]
pub(super) struct Hevc {
    /// Bytes of each NAL unit length field (`lengthSizeMinusOne + 1`).
    pub(super) length_size: usize,
    sps: Vec<Option<Sps>>,
    pps: Vec<Option<Pps>>,
}

/// The two-byte NAL unit header (§7.3.1.2): (nal_unit_type, nuh_layer_id).
fn nal_header(nal: &[u8]) -> Parse<(u8, u8)> {
    let [b0, b1] = *nal.first_chunk::<2>().ok_or("NAL unit shorter than its header")?;
    Ok(((b0 >> 1) & 0x3f, ((b0 & 1) << 5) | (b1 >> 3)))
}

impl Hevc {
    /// Reads an HEVCDecoderConfigurationRecord (14496-15 §8.3.3.1) and its parameter sets.
    pub(super) fn from_hvcc(hvcc: &[u8]) -> Parse<Hevc> {
        // configurationVersion is 1; some early writers put 0 there.
        if *hvcc.first().ok_or("hvcC truncated")? > 1 {
            return Err("hvcC configurationVersion is not 1");
        }
        let length_size = usize::from(*hvcc.get(21).ok_or("hvcC truncated")? & 3).saturating_add(1);
        if length_size == 3 {
            return Err("lengthSizeMinusOne 2 is not allowed");
        }
        let mut ctx = Hevc { length_size, sps: vec![None; MAX_SPS], pps: vec![None; MAX_PPS] };
        let (&arrays, mut rest) = hvcc.get(22..).and_then(<[u8]>::split_first).ok_or("hvcC truncated")?;
        for _ in 0..arrays {
            // array_completeness, reserved, NAL_unit_type (the NAL headers say it again)
            let (_, tail) = rest.split_first().ok_or("hvcC truncated")?;
            let (count, mut tail) = tail.split_first_chunk::<2>().ok_or("hvcC truncated")?;
            for _ in 0..u16::from_be_bytes(*count) {
                let (nal, next) = length_prefixed(tail)?;
                tail = next;
                ctx.parameter_set(nal)?;
            }
            rest = tail;
        }
        Ok(ctx)
    }

    /// Takes an SPS or PPS of layer 0; VPS, SEI and other layers' sets are not needed.
    fn parameter_set(&mut self, nal: &[u8]) -> Parse<()> {
        let (nal_type, layer) = nal_header(nal)?;
        let payload = nal.get(2..).unwrap_or_default();
        if layer != 0 {
            return Ok(());
        }
        match nal_type {
            SPS_NUT => {
                let (id, sps) = parse_sps(payload)?;
                *self.sps.get_mut(id).ok_or("SPS id out of range")? = Some(sps);
            }
            PPS_NUT => {
                let (id, pps) = parse_pps(payload)?;
                *self.pps.get_mut(id).ok_or("PPS id out of range")? = Some(pps);
            }
            _ => {}
        }
        Ok(())
    }

    /// Leading clear bytes of one NAL unit: all of a non-VCL unit (types 32–63), the header and
    /// slice segment header of a layer-0 slice (types 0–9, 16–21). Reserved VCL types (10–15,
    /// 22–31, ignored by decoders, §7.4.2.2) and slices of other layers (whose header syntax
    /// differs, F.7.3.6.1) are left clear.
    pub(super) fn clear_len(&mut self, nal: &[u8]) -> Parse<usize> {
        let (nal_type, layer) = nal_header(nal)?;
        let is_slice = nal_type <= 9 || (BLA_W_LP..=CRA_NUT).contains(&nal_type);
        if is_slice && layer == 0 {
            let payload = nal.get(2..).unwrap_or_default();
            let end = self.slice_header(nal_type, payload)?;
            return Ok(end.byte_pos().saturating_add(2));
        }
        self.parameter_set(nal)?;
        Ok(nal.len())
    }

    /// Reads slice_segment_header() (§7.3.6.1), which ends with byte_alignment(); the reader is
    /// left at the first byte of slice segment data.
    fn slice_header<'a>(&self, nal_type: u8, payload: &'a [u8]) -> Parse<BitReader<'a>> {
        let mut r = BitReader::new(payload);
        let first_slice_segment_in_pic = r.flag()?;
        if (BLA_W_LP..=RSV_IRAP_VCL23).contains(&nal_type) {
            r.skip(1)?; // no_output_of_prior_pics_flag
        }
        let pps_id = r.ue_max(63, "slice_pic_parameter_set_id out of range")?;
        let pps = self
            .pps
            .get(usize::try_from(pps_id).map_err(|_| "PPS id")?)
            .and_then(Option::as_ref)
            .ok_or("slice refers to an unknown PPS")?;
        let sps = self.sps.get(pps.sps_id).and_then(Option::as_ref).ok_or("PPS refers to an unknown SPS")?;
        let mut dependent = false;
        if !first_slice_segment_in_pic {
            if pps.dependent_slice_segments_enabled {
                dependent = r.flag()?;
            }
            r.skip(ceil_log2(sps.pic_size_in_ctbs))?; // slice_segment_address
        }
        if !dependent {
            independent_fields(&mut r, nal_type, sps, pps)?;
        }
        if pps.tiles_enabled || pps.entropy_coding_sync_enabled {
            // §7.4.7.1: one entry point per tile, per CTB row, or per CTB row of each tile.
            let max = match (pps.tiles_enabled, pps.entropy_coding_sync_enabled) {
                (true, false) => pps.num_tile_columns.saturating_mul(pps.num_tile_rows),
                (false, true) => sps.pic_height_in_ctbs,
                _ => pps.num_tile_columns.saturating_mul(sps.pic_height_in_ctbs),
            };
            let n = r.ue()?;
            if u64::from(n) >= max {
                return Err("num_entry_point_offsets out of range");
            }
            if n > 0 {
                let len = r.ue_max(31, "offset_len_minus1 out of range")?.saturating_add(1);
                for _ in 0..n {
                    r.skip(len)?; // entry_point_offset_minus1
                }
            }
        }
        if pps.slice_segment_header_extension_present {
            let len = r.ue_max(MAX_HEADER_EXTENSION, "slice_segment_header_extension_length out of range")?;
            r.skip(len.saturating_mul(8))?;
        }
        // byte_alignment() (§7.3.2.12): a one bit, then zeros. A mismatch means the header was
        // misread, so it is an error rather than a guess.
        if r.bit()? != 1 {
            return Err("slice header not followed by alignment_bit_equal_to_one");
        }
        while !r.byte_aligned() {
            if r.bit()? != 0 {
                return Err("slice header alignment bits are not zero");
            }
        }
        Ok(r)
    }

    /// RBSP bits of a slice NAL unit's header (tests compare it with what they wrote).
    #[cfg(test)]
    pub(super) fn header_bits(&self, nal: &[u8]) -> Parse<u64> {
        let (nal_type, _) = nal_header(nal)?;
        Ok(self.slice_header(nal_type, nal.get(2..).unwrap_or_default())?.rbsp_bit_pos())
    }
}

/// The fields of an independent slice segment header, from the reserved flags to
/// slice_loop_filter_across_slices_enabled_flag.
fn independent_fields(r: &mut BitReader<'_>, nal_type: u8, sps: &Sps, pps: &Pps) -> Parse<()> {
    r.skip(pps.num_extra_slice_header_bits)?; // slice_reserved_flag[]
                                              // Table 7-7: 0 = B, 1 = P, 2 = I.
    let slice_type = r.ue_max(2, "slice_type out of range")?;
    let (b, p) = (slice_type == 0, slice_type == 1);
    if pps.output_flag_present {
        r.skip(1)?; // pic_output_flag
    }
    if sps.separate_colour_plane {
        r.skip(2)?; // colour_plane_id
    }
    let mut slice_temporal_mvp = false;
    // NumPicTotalCurr (7-55)
    let mut num_pic_total_curr = 0u32;
    if nal_type != IDR_W_RADL && nal_type != IDR_N_LP {
        r.skip(sps.log2_max_poc_lsb)?; // slice_pic_order_cnt_lsb
        let num_sets = u32::try_from(sps.st_rps.len()).map_err(|_| "RPS count")?;
        num_pic_total_curr = if !r.flag()? {
            // short_term_ref_pic_set_sps_flag == 0: the slice carries its own set.
            st_ref_pic_set(r, num_sets, num_sets, &sps.st_rps)?.used_by_curr()
        } else {
            let idx = r.u(ceil_log2(u64::from(num_sets)))?; // short_term_ref_pic_set_idx
            sps.st_rps
                .get(usize::try_from(idx).map_err(|_| "RPS index")?)
                .ok_or("short_term_ref_pic_set_idx out of range")?
                .used_by_curr()
        };
        if sps.long_term_ref_pics_present {
            let lt_sps = u32::try_from(sps.lt_used_by_curr.len()).map_err(|_| "LT count")?;
            let num_long_term_sps = if lt_sps > 0 { r.ue_max(lt_sps, "num_long_term_sps out of range")? } else { 0 };
            let num_long_term_pics = r.ue_max(MAX_LT_PICS, "num_long_term_pics out of range")?;
            let total = num_long_term_sps.saturating_add(num_long_term_pics);
            if total > MAX_LT_PICS {
                return Err("too many long-term pictures");
            }
            for i in 0..total {
                let used = if i < num_long_term_sps {
                    let idx = r.u(ceil_log2(u64::from(lt_sps)))?; // lt_idx_sps
                    *sps.lt_used_by_curr
                        .get(usize::try_from(idx).map_err(|_| "LT index")?)
                        .ok_or("lt_idx_sps out of range")?
                } else {
                    r.skip(sps.log2_max_poc_lsb)?; // poc_lsb_lt
                    r.flag()? // used_by_curr_pic_lt_flag
                };
                if used {
                    num_pic_total_curr = num_pic_total_curr.saturating_add(1);
                }
                if r.flag()? {
                    r.ue()?; // delta_poc_msb_present_flag → delta_poc_msb_cycle_lt
                }
            }
        }
        if sps.temporal_mvp_enabled {
            slice_temporal_mvp = r.flag()?;
        }
    }
    if pps.curr_pic_ref_enabled {
        num_pic_total_curr = num_pic_total_curr.saturating_add(1);
    }
    let (mut sao_luma, mut sao_chroma) = (false, false);
    if sps.sample_adaptive_offset_enabled {
        sao_luma = r.flag()?;
        if sps.chroma_array_type != 0 {
            sao_chroma = r.flag()?;
        }
    }
    if p || b {
        let mut l0 = pps.num_ref_idx_l0_default_minus1;
        let mut l1 = pps.num_ref_idx_l1_default_minus1;
        if r.flag()? {
            // num_ref_idx_active_override_flag
            l0 = r.ue_max(MAX_REF_IDX, "num_ref_idx_l0_active_minus1 out of range")?;
            if b {
                l1 = r.ue_max(MAX_REF_IDX, "num_ref_idx_l1_active_minus1 out of range")?;
            }
        }
        if pps.lists_modification_present && num_pic_total_curr > 1 {
            // ref_pic_lists_modification() (§7.3.6.2)
            let bits = ceil_log2(u64::from(num_pic_total_curr));
            if r.flag()? {
                for _ in 0..=l0 {
                    r.skip(bits)?; // list_entry_l0
                }
            }
            if b && r.flag()? {
                for _ in 0..=l1 {
                    r.skip(bits)?; // list_entry_l1
                }
            }
        }
        if b {
            r.skip(1)?; // mvd_l1_zero_flag
        }
        if pps.cabac_init_present {
            r.skip(1)?; // cabac_init_flag
        }
        if slice_temporal_mvp {
            // collocated_from_l0_flag, inferred 1 when absent
            let from_l0 = !b || r.flag()?;
            if (from_l0 && l0 > 0) || (!from_l0 && l1 > 0) {
                r.ue_max(MAX_REF_IDX, "collocated_ref_idx out of range")?;
            }
        }
        if (pps.weighted_pred && p) || (pps.weighted_bipred && b) {
            if pps.curr_pic_ref_enabled {
                // Which weights are present depends on the POCs of the reference list entries
                // (7.3.6.3), which needs a decoded picture buffer.
                return Err("weighted prediction with the current picture as reference");
            }
            pred_weight_table(r, sps.chroma_array_type, l0, b.then_some(l1))?;
        }
        r.ue_max(4, "five_minus_max_num_merge_cand out of range")?;
        if sps.motion_vector_resolution_control_idc == 2 {
            r.skip(1)?; // use_integer_mv_flag
        }
    }
    r.se()?; // slice_qp_delta
    if pps.slice_chroma_qp_offsets_present {
        r.se()?; // slice_cb_qp_offset
        r.se()?; // slice_cr_qp_offset
    }
    if pps.slice_act_qp_offsets_present {
        for _ in 0..3 {
            r.se()?; // slice_act_{y,cb,cr}_qp_offset
        }
    }
    if pps.chroma_qp_offset_list_enabled {
        r.skip(1)?; // cu_chroma_qp_offset_enabled_flag
    }
    let override_flag = pps.deblocking_filter_override_enabled && r.flag()?;
    // slice_deblocking_filter_disabled_flag is inferred from the PPS when absent.
    let mut deblocking_disabled = pps.deblocking_filter_disabled;
    if override_flag {
        deblocking_disabled = r.flag()?;
        if !deblocking_disabled {
            r.se()?; // slice_beta_offset_div2
            r.se()?; // slice_tc_offset_div2
        }
    }
    if pps.loop_filter_across_slices_enabled && (sao_luma || sao_chroma || !deblocking_disabled) {
        r.skip(1)?; // slice_loop_filter_across_slices_enabled_flag
    }
    Ok(())
}

/// pred_weight_table() (§7.3.6.3) for layer 0 without the current picture as a reference, where
/// every entry carries its flags.
fn pred_weight_table(r: &mut BitReader<'_>, chroma_array_type: u32, l0: u32, l1: Option<u32>) -> Parse<()> {
    r.ue_max(7, "luma_log2_weight_denom out of range")?;
    if chroma_array_type != 0 {
        r.se()?; // delta_chroma_log2_weight_denom
    }
    for n in std::iter::once(l0).chain(l1) {
        let mut luma = [false; 16];
        let mut chroma = [false; 16];
        let count = usize::try_from(n).map_err(|_| "ref count")?.saturating_add(1);
        for flag in luma.iter_mut().take(count) {
            *flag = r.flag()?;
        }
        if chroma_array_type != 0 {
            for flag in chroma.iter_mut().take(count) {
                *flag = r.flag()?;
            }
        }
        for (&l, &c) in luma.iter().zip(&chroma).take(count) {
            if l {
                r.se()?; // delta_luma_weight
                r.se()?; // luma_offset
            }
            if c {
                for _ in 0..4 {
                    r.se()?; // delta_chroma_weight, delta_chroma_offset (× 2)
                }
            }
        }
    }
    Ok(())
}
