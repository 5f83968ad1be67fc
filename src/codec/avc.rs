//! H.264 / AVC: the decoder configuration record (ISO/IEC 14496-15 §5.3.3), the parts of the
//! sequence and picture parameter sets a slice header depends on (H.264 §7.3.2.1.1, §7.3.2.2),
//! and the slice header itself (§7.3.3), parsed to find where slice data starts.

use super::bits::{ceil_log2, BitReader};
use super::Parse;

/// `seq_parameter_set_id` range (§7.4.2.1.1).
const MAX_SPS: usize = 32;
/// `pic_parameter_set_id` range (§7.4.2.2).
const MAX_PPS: usize = 256;
/// Largest `num_ref_idx_lX_active_minus1` (§7.4.3: 31 for field pictures).
const MAX_REF_IDX: u32 = 31;
/// Cap on memory_management_control_operation loops (JM/FFmpeg's MAX_MMCO_COUNT).
const MAX_MMCO: u32 = 66;
/// Largest picture dimension in macroblocks we accept (Level 6.2 allows 1055; room to spare).
const MAX_MBS: u32 = 1 << 12;

/// What a slice header needs from its SPS.
#[derive(Clone, Debug)]
struct Sps {
    separate_colour_plane: bool,
    chroma_array_type: u32,
    log2_max_frame_num: u32,
    frame_mbs_only: bool,
    pic_order_cnt_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    pic_size_in_map_units: u64,
}

/// What a slice header needs from its PPS.
#[derive(Clone, Debug)]
struct Pps {
    sps_id: usize,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_slice_groups_minus1: u32,
    slice_group_map_type: u32,
    slice_group_change_rate: u64,
    num_ref_idx_l0_default_minus1: u32,
    num_ref_idx_l1_default_minus1: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

/// Parameter sets of one AVC track.
#[derive(Clone, Debug)]
pub(super) struct Avc {
    /// Bytes of each NAL unit length field (`lengthSizeMinusOne + 1`).
    pub(super) length_size: usize,
    sps: Vec<Option<Sps>>,
    pps: Vec<Option<Pps>>,
}

/// NAL unit types (H.264 Table 7-1).
const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

impl Avc {
    /// Reads an AVCDecoderConfigurationRecord (14496-15 §5.3.3.1) and its parameter sets.
    pub(super) fn from_avcc(avcc: &[u8]) -> Parse<Avc> {
        let mut p = avcc.iter().copied();
        let mut byte = || p.next().ok_or("avcC truncated");
        if byte()? != 1 {
            return Err("avcC configurationVersion is not 1");
        }
        let _profile_compat_level = (byte()?, byte()?, byte()?);
        let length_size = usize::from(byte()? & 3).saturating_add(1);
        if length_size == 3 {
            return Err("lengthSizeMinusOne 2 is not allowed");
        }
        let mut ctx = Avc { length_size, sps: vec![None; MAX_SPS], pps: vec![None; MAX_PPS] };
        let mut rest = avcc.get(5..).ok_or("avcC truncated")?;
        // numOfSequenceParameterSets (5 bits), then numOfPictureParameterSets (8 bits).
        for mask in [0x1f, 0xff] {
            let (&count, tail) = rest.split_first().ok_or("avcC truncated")?;
            rest = tail;
            for _ in 0..(count & mask) {
                let (nal, tail) = length_prefixed(rest)?;
                rest = tail;
                ctx.parameter_set(nal)?;
            }
        }
        // Trailing chroma_format/bit depth/SPS-extension fields (High profiles) are not needed.
        Ok(ctx)
    }

    /// Takes an SPS or PPS (from the record or in-band); other NAL unit types are ignored.
    fn parameter_set(&mut self, nal: &[u8]) -> Parse<()> {
        let (&header, payload) = nal.split_first().ok_or("empty NAL unit")?;
        match header & 0x1f {
            NAL_SPS => {
                let (id, sps) = parse_sps(payload)?;
                *self.sps.get_mut(id).ok_or("SPS id out of range")? = Some(sps);
            }
            NAL_PPS => {
                let (id, pps) = parse_pps(payload)?;
                *self.pps.get_mut(id).ok_or("PPS id out of range")? = Some(pps);
            }
            _ => {}
        }
        Ok(())
    }

    /// Leading clear bytes of one NAL unit: all of a non-VCL unit (and of data partitions, types
    /// 2–4, left clear), the header and slice header of a slice (types 1 and 5).
    pub(super) fn clear_len(&mut self, nal: &[u8]) -> Parse<usize> {
        let (&header, payload) = nal.split_first().ok_or("empty NAL unit")?;
        let nal_type = header & 0x1f;
        let nal_ref_idc = (header >> 5) & 3;
        match nal_type {
            NAL_SLICE | NAL_IDR => {
                let end = self.slice_header(nal_type, nal_ref_idc, payload)?;
                Ok(end.byte_pos().saturating_add(1))
            }
            _ => {
                self.parameter_set(nal)?;
                Ok(nal.len())
            }
        }
    }

    /// Reads slice_header() (§7.3.3); the reader is left on its last bit, so its byte position
    /// is the header's size in escaped bytes, rounded up.
    fn slice_header<'a>(&self, nal_type: u8, nal_ref_idc: u8, payload: &'a [u8]) -> Parse<BitReader<'a>> {
        let mut r = BitReader::new(payload);
        let _first_mb_in_slice = r.ue()?;
        // Table 7-6: slice_type % 5 = P, B, I, SP, SI.
        let slice_type = r.ue_max(9, "slice_type out of range")? % 5;
        let (p, b, i, sp, si) = (slice_type == 0, slice_type == 1, slice_type == 2, slice_type == 3, slice_type == 4);
        let pps_id = r.ue_max(255, "pic_parameter_set_id out of range")?;
        let pps = self
            .pps
            .get(usize::try_from(pps_id).map_err(|_| "PPS id")?)
            .and_then(Option::as_ref)
            .ok_or("slice refers to an unknown PPS")?;
        let sps = self.sps.get(pps.sps_id).and_then(Option::as_ref).ok_or("PPS refers to an unknown SPS")?;
        if sps.separate_colour_plane {
            r.skip(2)?; // colour_plane_id
        }
        r.skip(sps.log2_max_frame_num)?; // frame_num
        let mut field_pic = false;
        if !sps.frame_mbs_only {
            field_pic = r.flag()?;
            if field_pic {
                r.skip(1)?; // bottom_field_flag
            }
        }
        if nal_type == NAL_IDR {
            r.ue_max(65535, "idr_pic_id out of range")?;
        }
        if sps.pic_order_cnt_type == 0 {
            r.skip(sps.log2_max_poc_lsb)?; // pic_order_cnt_lsb
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?; // delta_pic_order_cnt_bottom
            }
        }
        if sps.pic_order_cnt_type == 1 && !sps.delta_pic_order_always_zero {
            r.se()?; // delta_pic_order_cnt[0]
            if pps.bottom_field_pic_order_in_frame_present && !field_pic {
                r.se()?; // delta_pic_order_cnt[1]
            }
        }
        if pps.redundant_pic_cnt_present {
            r.ue_max(127, "redundant_pic_cnt out of range")?;
        }
        if b {
            r.skip(1)?; // direct_spatial_mv_pred_flag
        }
        let mut l0 = pps.num_ref_idx_l0_default_minus1;
        let mut l1 = pps.num_ref_idx_l1_default_minus1;
        if (p || sp || b) && r.flag()? {
            // num_ref_idx_active_override_flag
            l0 = r.ue_max(MAX_REF_IDX, "num_ref_idx_l0_active_minus1 out of range")?;
            if b {
                l1 = r.ue_max(MAX_REF_IDX, "num_ref_idx_l1_active_minus1 out of range")?;
            }
        }
        // ref_pic_list_modification() (§7.3.3.1); types 20/21 (MVC) never get here.
        if !i && !si {
            ref_pic_list_modification(&mut r, l0)?;
            if b {
                ref_pic_list_modification(&mut r, l1)?;
            }
        }
        if (pps.weighted_pred && (p || sp)) || (pps.weighted_bipred_idc == 1 && b) {
            pred_weight_table(&mut r, sps.chroma_array_type, l0, b.then_some(l1))?;
        }
        if nal_ref_idc != 0 {
            dec_ref_pic_marking(&mut r, nal_type == NAL_IDR)?;
        }
        if pps.entropy_coding_mode && !i && !si {
            r.ue_max(2, "cabac_init_idc out of range")?;
        }
        r.se()?; // slice_qp_delta
        if sp || si {
            if sp {
                r.skip(1)?; // sp_for_switch_flag
            }
            r.se()?; // slice_qs_delta
        }
        if pps.deblocking_filter_control_present {
            let idc = r.ue_max(6, "disable_deblocking_filter_idc out of range")?;
            if idc != 1 {
                r.se()?; // slice_alpha_c0_offset_div2
                r.se()?; // slice_beta_offset_div2
            }
        }
        if pps.num_slice_groups_minus1 > 0 && (3..=5).contains(&pps.slice_group_map_type) {
            // slice_group_change_cycle: Ceil(Log2(PicSizeInMapUnits ÷ SliceGroupChangeRate + 1))
            // bits (7.4.3), "÷" without truncation: the smallest v with
            // rate · 2^v ≥ size + rate.
            let size = sps.pic_size_in_map_units;
            let rate = pps.slice_group_change_rate;
            let bits = ceil_log2(size.saturating_add(rate).div_ceil(rate.max(1)));
            r.skip(bits)?;
        }
        Ok(r)
    }

    /// RBSP bits of a slice NAL unit's header (tests compare it with what they wrote).
    #[cfg(test)]
    pub(super) fn header_bits(&self, nal: &[u8]) -> Parse<u64> {
        let (&header, payload) = nal.split_first().ok_or("empty NAL unit")?;
        Ok(self.slice_header(header & 0x1f, (header >> 5) & 3, payload)?.rbsp_bit_pos())
    }
}

/// Splits `u16 length ‖ bytes` off the front (the record's parameter set arrays).
pub(super) fn length_prefixed(buf: &[u8]) -> Parse<(&[u8], &[u8])> {
    let (len, rest) = buf.split_first_chunk::<2>().ok_or("parameter set length truncated")?;
    rest.split_at_checked(usize::from(u16::from_be_bytes(*len))).ok_or("parameter set truncated")
}

/// §7.3.2.1.1, read up to `frame_mbs_only_flag`: everything a slice header depends on.
fn parse_sps(payload: &[u8]) -> Parse<(usize, Sps)> {
    let mut r = BitReader::new(payload);
    let profile_idc = r.u(8)?;
    r.skip(16)?; // constraint_set flags, reserved_zero_2bits, level_idc
    let id = r.ue_max(31, "seq_parameter_set_id out of range")?;
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(profile_idc, 100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135) {
        chroma_format_idc = r.ue_max(3, "chroma_format_idc out of range")?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag()?;
        }
        r.ue_max(6, "bit_depth_luma_minus8 out of range")?;
        r.ue_max(6, "bit_depth_chroma_minus8 out of range")?;
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.flag()? {
            // seq_scaling_matrix_present_flag
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for list in 0..lists {
                if r.flag()? {
                    scaling_list(&mut r, if list < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    let log2_max_frame_num = r.ue_max(12, "log2_max_frame_num_minus4 out of range")?.saturating_add(4);
    let pic_order_cnt_type = r.ue_max(2, "pic_order_cnt_type out of range")?;
    let mut log2_max_poc_lsb = 0;
    let mut delta_pic_order_always_zero = false;
    if pic_order_cnt_type == 0 {
        log2_max_poc_lsb = r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 out of range")?.saturating_add(4);
    } else if pic_order_cnt_type == 1 {
        delta_pic_order_always_zero = r.flag()?;
        r.se()?; // offset_for_non_ref_pic
        r.se()?; // offset_for_top_to_bottom_field
        let cycle = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle out of range")?;
        for _ in 0..cycle {
            r.se()?; // offset_for_ref_frame
        }
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width = r.ue_max(MAX_MBS, "pic_width_in_mbs_minus1 out of range")?.saturating_add(1);
    let height = r.ue_max(MAX_MBS, "pic_height_in_map_units_minus1 out of range")?.saturating_add(1);
    let frame_mbs_only = r.flag()?;
    let sps = Sps {
        separate_colour_plane,
        chroma_array_type: if separate_colour_plane { 0 } else { chroma_format_idc },
        log2_max_frame_num,
        frame_mbs_only,
        pic_order_cnt_type,
        log2_max_poc_lsb,
        delta_pic_order_always_zero,
        pic_size_in_map_units: u64::from(width).saturating_mul(u64::from(height)),
    };
    Ok((usize::try_from(id).map_err(|_| "SPS id")?, sps))
}

/// scaling_list() (§7.3.2.1.1.1), consumed only.
fn scaling_list(r: &mut BitReader<'_>, size: u32) -> Parse<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err("delta_scale out of range");
            }
            next = last.wrapping_add(delta).wrapping_add(256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// §7.3.2.2, read up to `redundant_pic_cnt_present_flag`. The tail (transform_8x8_mode_flag,
/// PPS scaling lists, second_chroma_qp_index_offset) does not influence the slice header.
fn parse_pps(payload: &[u8]) -> Parse<(usize, Pps)> {
    let mut r = BitReader::new(payload);
    let id = r.ue_max(255, "pic_parameter_set_id out of range")?;
    let sps_id = r.ue_max(31, "seq_parameter_set_id out of range")?;
    let entropy_coding_mode = r.flag()?;
    let bottom_field_pic_order_in_frame_present = r.flag()?;
    let num_slice_groups_minus1 = r.ue_max(7, "num_slice_groups_minus1 out of range")?;
    let mut slice_group_map_type = 0;
    let mut slice_group_change_rate = 1;
    if num_slice_groups_minus1 > 0 {
        slice_group_map_type = r.ue_max(6, "slice_group_map_type out of range")?;
        match slice_group_map_type {
            0 => {
                for _ in 0..=num_slice_groups_minus1 {
                    r.ue()?; // run_length_minus1
                }
            }
            2 => {
                for _ in 0..num_slice_groups_minus1 {
                    r.ue()?; // top_left
                    r.ue()?; // bottom_right
                }
            }
            3..=5 => {
                r.skip(1)?; // slice_group_change_direction_flag
                slice_group_change_rate = u64::from(r.ue()?).saturating_add(1);
            }
            6 => {
                let units = r.ue_max(MAX_MBS.saturating_mul(MAX_MBS), "pic_size_in_map_units_minus1 out of range")?;
                let bits = ceil_log2(u64::from(num_slice_groups_minus1).saturating_add(1));
                for _ in 0..=units {
                    r.skip(bits)?; // slice_group_id
                }
            }
            _ => {}
        }
    }
    let num_ref_idx_l0_default_minus1 = r.ue_max(MAX_REF_IDX, "num_ref_idx_l0_default_active_minus1 out of range")?;
    let num_ref_idx_l1_default_minus1 = r.ue_max(MAX_REF_IDX, "num_ref_idx_l1_default_active_minus1 out of range")?;
    let weighted_pred = r.flag()?;
    let weighted_bipred_idc = r.u(2)?;
    r.se()?; // pic_init_qp_minus26
    r.se()?; // pic_init_qs_minus26
    r.se()?; // chroma_qp_index_offset
    let deblocking_filter_control_present = r.flag()?;
    r.skip(1)?; // constrained_intra_pred_flag
    let redundant_pic_cnt_present = r.flag()?;
    let pps = Pps {
        sps_id: usize::try_from(sps_id).map_err(|_| "SPS id")?,
        entropy_coding_mode,
        bottom_field_pic_order_in_frame_present,
        num_slice_groups_minus1,
        slice_group_map_type,
        slice_group_change_rate,
        num_ref_idx_l0_default_minus1,
        num_ref_idx_l1_default_minus1,
        weighted_pred,
        weighted_bipred_idc,
        deblocking_filter_control_present,
        redundant_pic_cnt_present,
    };
    Ok((usize::try_from(id).map_err(|_| "PPS id")?, pps))
}

/// One list of ref_pic_list_modification() (§7.3.3.1). At most num_ref_idx_lX_active_minus1 + 1
/// operations precede the terminating `modification_of_pic_nums_idc == 3` (§7.4.3.1).
fn ref_pic_list_modification(r: &mut BitReader<'_>, num_ref_idx_minus1: u32) -> Parse<()> {
    if !r.flag()? {
        return Ok(());
    }
    for _ in 0..=num_ref_idx_minus1.saturating_add(1) {
        match r.ue_max(3, "modification_of_pic_nums_idc out of range")? {
            0 | 1 => {
                r.ue()?; // abs_diff_pic_num_minus1
            }
            2 => {
                r.ue()?; // long_term_pic_num
            }
            _ => return Ok(()),
        }
    }
    Err("too many ref_pic_list_modification operations")
}

/// pred_weight_table() (§7.3.3.2); `l1` is given for B slices.
fn pred_weight_table(r: &mut BitReader<'_>, chroma_array_type: u32, l0: u32, l1: Option<u32>) -> Parse<()> {
    r.ue_max(7, "luma_log2_weight_denom out of range")?;
    if chroma_array_type != 0 {
        r.ue_max(7, "chroma_log2_weight_denom out of range")?;
    }
    for n in std::iter::once(l0).chain(l1) {
        for _ in 0..=n {
            if r.flag()? {
                r.se()?; // luma_weight
                r.se()?; // luma_offset
            }
            if chroma_array_type != 0 && r.flag()? {
                for _ in 0..2 {
                    r.se()?; // chroma_weight
                    r.se()?; // chroma_offset
                }
            }
        }
    }
    Ok(())
}

/// dec_ref_pic_marking() (§7.3.3.3).
fn dec_ref_pic_marking(r: &mut BitReader<'_>, idr: bool) -> Parse<()> {
    if idr {
        r.skip(2)?; // no_output_of_prior_pics_flag, long_term_reference_flag
        return Ok(());
    }
    if !r.flag()? {
        // adaptive_ref_pic_marking_mode_flag
        return Ok(());
    }
    for _ in 0..MAX_MMCO {
        let mmco = r.ue_max(6, "memory_management_control_operation out of range")?;
        if mmco == 0 {
            return Ok(());
        }
        if mmco == 1 || mmco == 3 {
            r.ue()?; // difference_of_pic_nums_minus1
        }
        if mmco == 2 {
            r.ue()?; // long_term_pic_num
        }
        if mmco == 3 || mmco == 6 {
            r.ue()?; // long_term_frame_idx
        }
        if mmco == 4 {
            r.ue()?; // max_long_term_frame_idx_plus1
        }
    }
    Err("too many memory_management_control_operations")
}
