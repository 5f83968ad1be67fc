//! H.265 / HEVC sequence and picture parameter sets (H.265 §7.3.2.2, §7.3.2.3), reduced to what
//! slice_segment_header() (§7.3.6.1) depends on. Parameter sets of layers above 0 are not read
//! (their syntax differs, F.7.3.2.2); the caller ignores them.

use super::bits::BitReader;
use super::Parse;

/// Most pictures in a short-term reference picture set list (sps_max_dec_pic_buffering ≤ 16).
const MAX_RPS_PICS: usize = 16;
/// `num_short_term_ref_pic_sets` range (§7.4.3.2.1).
const MAX_ST_RPS: u32 = 64;
/// `num_long_term_ref_pics_sps` range.
const MAX_LT_SPS: u32 = 32;
/// Largest `pic_width/height_in_luma_samples` accepted (Level 6.2 allows 16888).
const MAX_LUMA: u32 = 1 << 16;
/// Cap on tile rows/columns at PPS time (Level 6.2 allows 20 × 22; checked against the picture
/// at slice time).
const MAX_TILES: u32 = 1 << 10;

/// One short-term reference picture set (§7.4.8): `(DeltaPocS0, UsedByCurrPicS0)` and
/// `(DeltaPocS1, UsedByCurrPicS1)`.
#[derive(Clone, Debug, Default)]
pub(super) struct Rps {
    pub(super) s0: Vec<(i32, bool)>,
    pub(super) s1: Vec<(i32, bool)>,
}

impl Rps {
    /// Pictures of this set used by the current picture (part of NumPicTotalCurr, 7-55).
    pub(super) fn used_by_curr(&self) -> u32 {
        let used = self.s0.iter().chain(&self.s1).filter(|(_, u)| *u).count();
        u32::try_from(used).unwrap_or(u32::MAX)
    }

    fn num_delta_pocs(&self) -> usize {
        self.s0.len().saturating_add(self.s1.len())
    }
}

/// What a slice segment header needs from its SPS.
#[derive(Clone, Debug)]
pub(super) struct Sps {
    pub(super) separate_colour_plane: bool,
    pub(super) chroma_array_type: u32,
    pub(super) log2_max_poc_lsb: u32,
    pub(super) pic_size_in_ctbs: u64,
    pub(super) pic_height_in_ctbs: u64,
    pub(super) st_rps: Vec<Rps>,
    pub(super) long_term_ref_pics_present: bool,
    /// used_by_curr_pic_lt_sps_flag[i], one per num_long_term_ref_pics_sps.
    pub(super) lt_used_by_curr: Vec<bool>,
    pub(super) temporal_mvp_enabled: bool,
    pub(super) sample_adaptive_offset_enabled: bool,
    /// sps_scc_extension: 2 adds use_integer_mv_flag to P/B slice headers.
    pub(super) motion_vector_resolution_control_idc: u32,
}

/// What a slice segment header needs from its PPS.
#[derive(Clone, Debug)]
pub(super) struct Pps {
    pub(super) sps_id: usize,
    pub(super) dependent_slice_segments_enabled: bool,
    pub(super) output_flag_present: bool,
    pub(super) num_extra_slice_header_bits: u32,
    pub(super) cabac_init_present: bool,
    pub(super) num_ref_idx_l0_default_minus1: u32,
    pub(super) num_ref_idx_l1_default_minus1: u32,
    pub(super) slice_chroma_qp_offsets_present: bool,
    pub(super) weighted_pred: bool,
    pub(super) weighted_bipred: bool,
    pub(super) tiles_enabled: bool,
    pub(super) entropy_coding_sync_enabled: bool,
    pub(super) num_tile_columns: u64,
    pub(super) num_tile_rows: u64,
    pub(super) loop_filter_across_slices_enabled: bool,
    pub(super) deblocking_filter_override_enabled: bool,
    pub(super) deblocking_filter_disabled: bool,
    pub(super) lists_modification_present: bool,
    pub(super) slice_segment_header_extension_present: bool,
    /// pps_range_extension
    pub(super) chroma_qp_offset_list_enabled: bool,
    /// pps_scc_extension
    pub(super) slice_act_qp_offsets_present: bool,
    /// pps_scc_extension: the current picture is a reference (counts in NumPicTotalCurr).
    pub(super) curr_pic_ref_enabled: bool,
}

/// seq_parameter_set_rbsp() (§7.3.2.2.1) of layer 0.
pub(super) fn parse_sps(payload: &[u8]) -> Parse<(usize, Sps)> {
    let mut r = BitReader::new(payload);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.u(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err("sps_max_sub_layers_minus1 out of range");
    }
    r.skip(1)?; // sps_temporal_id_nesting_flag
    let general_profile = profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let id = r.ue_max(15, "sps_seq_parameter_set_id out of range")?;
    let chroma_format_idc = r.ue_max(3, "chroma_format_idc out of range")?;
    let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
    let width = r.ue_max(MAX_LUMA, "pic_width_in_luma_samples out of range")?;
    let height = r.ue_max(MAX_LUMA, "pic_height_in_luma_samples out of range")?;
    if r.flag()? {
        // conformance_window_flag: four offsets
        for _ in 0..4 {
            r.ue()?;
        }
    }
    let bit_depth_luma = r.ue_max(8, "bit_depth_luma_minus8 out of range")?;
    let bit_depth_chroma = r.ue_max(8, "bit_depth_chroma_minus8 out of range")?;
    let log2_max_poc_lsb = r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4 out of range")?.saturating_add(4);
    let ordering_info_present = r.flag()?;
    let first = if ordering_info_present { 0 } else { max_sub_layers_minus1 };
    for _ in first..=max_sub_layers_minus1 {
        r.ue()?; // sps_max_dec_pic_buffering_minus1
        r.ue()?; // sps_max_num_reorder_pics
        r.ue()?; // sps_max_latency_increase_plus1
    }
    let min_cb_log2 = r.ue_max(3, "log2_min_luma_coding_block_size_minus3 out of range")?.saturating_add(3);
    let ctb_log2 = min_cb_log2.saturating_add(r.ue_max(3, "CtbLog2SizeY out of range")?);
    if ctb_log2 > 6 {
        return Err("CtbLog2SizeY out of range");
    }
    r.ue()?; // log2_min_luma_transform_block_size_minus2
    r.ue()?; // log2_diff_max_min_luma_transform_block_size
    r.ue()?; // max_transform_hierarchy_depth_inter
    r.ue()?; // max_transform_hierarchy_depth_intra
    if r.flag()? && r.flag()? {
        // scaling_list_enabled_flag && sps_scaling_list_data_present_flag
        scaling_list_data(&mut r)?;
    }
    r.skip(1)?; // amp_enabled_flag
    let sample_adaptive_offset_enabled = r.flag()?;
    if r.flag()? {
        // pcm_enabled_flag
        r.skip(8)?; // pcm_sample_bit_depth_luma_minus1, _chroma_minus1
        r.ue()?; // log2_min_pcm_luma_coding_block_size_minus3
        r.ue()?; // log2_diff_max_min_pcm_luma_coding_block_size
        r.skip(1)?; // pcm_loop_filter_disabled_flag
    }
    let num_st_rps = r.ue_max(MAX_ST_RPS, "num_short_term_ref_pic_sets out of range")?;
    let mut st_rps: Vec<Rps> = Vec::new();
    for idx in 0..num_st_rps {
        let rps = st_ref_pic_set(&mut r, idx, num_st_rps, &st_rps)?;
        st_rps.push(rps);
    }
    let long_term_ref_pics_present = r.flag()?;
    let mut lt_used_by_curr = Vec::new();
    if long_term_ref_pics_present {
        let n = r.ue_max(MAX_LT_SPS, "num_long_term_ref_pics_sps out of range")?;
        for _ in 0..n {
            r.skip(log2_max_poc_lsb)?; // lt_ref_pic_poc_lsb_sps
            lt_used_by_curr.push(r.flag()?);
        }
    }
    let temporal_mvp_enabled = r.flag()?;
    r.skip(1)?; // strong_intra_smoothing_enabled_flag
    let tail = sps_tail(
        &mut r,
        max_sub_layers_minus1,
        chroma_format_idc,
        bit_depth_luma.saturating_add(8),
        bit_depth_chroma.saturating_add(8),
    );
    // Only the SCC extension (after the VUI) matters to slice headers. Streams whose profile
    // cannot use it are tolerated with an unreadable VUI (seen in the wild); SCC streams are not.
    let motion_vector_resolution_control_idc = match tail {
        Ok(idc) => idc,
        Err(e) if general_profile.may_use_scc() => return Err(e),
        Err(_) => 0,
    };
    let ctb = 1u64.wrapping_shl(ctb_log2);
    let w = u64::from(width).div_ceil(ctb);
    let h = u64::from(height).div_ceil(ctb);
    if w == 0 || h == 0 {
        return Err("empty picture");
    }
    let sps = Sps {
        separate_colour_plane,
        chroma_array_type: if separate_colour_plane { 0 } else { chroma_format_idc },
        log2_max_poc_lsb,
        pic_size_in_ctbs: w.saturating_mul(h),
        pic_height_in_ctbs: h,
        st_rps,
        long_term_ref_pics_present,
        lt_used_by_curr,
        temporal_mvp_enabled,
        sample_adaptive_offset_enabled,
        motion_vector_resolution_control_idc,
    };
    Ok((usize::try_from(id).map_err(|_| "SPS id")?, sps))
}

/// general_profile_idc and its compatibility flags.
struct GeneralProfile {
    idc: u32,
    compat: u32,
}

impl GeneralProfile {
    /// Screen content coding profiles (A.3.7, general_profile_idc 9) and anything newer.
    fn may_use_scc(&self) -> bool {
        self.idc >= 9 || self.idc == 0 || self.compat & (0xffff_ffff >> 9) != 0
    }
}

/// profile_tier_level(1, maxNumSubLayersMinus1) (§7.3.3).
fn profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Parse<GeneralProfile> {
    r.skip(3)?; // general_profile_space, general_tier_flag
    let idc = r.u(5)?;
    let compat = r.u(32)?;
    r.skip(4 + 43 + 1 + 8)?; // source flags, constraint flags, inbld/reserved, general_level_idc
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        present.push((r.flag()?, r.flag()?));
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip(2)?; // reserved_zero_2bits
        }
    }
    for (profile, level) in present {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(GeneralProfile { idc, compat })
}

/// scaling_list_data() (§7.3.4), consumed only.
fn scaling_list_data(r: &mut BitReader<'_>) -> Parse<()> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !r.flag()? {
                r.ue_max(5, "scaling_list_pred_matrix_id_delta out of range")?;
                continue;
            }
            let coef_num = if size_id == 0 { 16 } else { 64 };
            if size_id > 1 {
                r.se()?; // scaling_list_dc_coef_minus8
            }
            for _ in 0..coef_num {
                r.se()?; // scaling_list_delta_coef
            }
        }
    }
    Ok(())
}

/// st_ref_pic_set(stRpsIdx) (§7.3.7) with the derivation of §7.4.8 (7-61 … 7-64), so a later set
/// (or a slice's own set) can be predicted from it. `sets` holds the sets 0..idx already parsed.
pub(super) fn st_ref_pic_set(r: &mut BitReader<'_>, idx: u32, num_sets: u32, sets: &[Rps]) -> Parse<Rps> {
    let inter = idx != 0 && r.flag()?;
    let mut out = Rps::default();
    if !inter {
        let neg = r.ue_max(16, "num_negative_pics out of range")?;
        let pos = r.ue_max(16, "num_positive_pics out of range")?;
        let mut poc = 0i32;
        for _ in 0..neg {
            let d =
                i32::try_from(r.ue_max((1 << 15) - 1, "delta_poc_s0_minus1 out of range")?).map_err(|_| "delta_poc")?;
            poc = poc.saturating_sub(d.saturating_add(1));
            out.s0.push((poc, r.flag()?));
        }
        poc = 0;
        for _ in 0..pos {
            let d =
                i32::try_from(r.ue_max((1 << 15) - 1, "delta_poc_s1_minus1 out of range")?).map_err(|_| "delta_poc")?;
            poc = poc.saturating_add(d.saturating_add(1));
            out.s1.push((poc, r.flag()?));
        }
    } else {
        let delta_idx = if idx == num_sets {
            r.ue_max(idx.saturating_sub(1), "delta_idx_minus1 out of range")?.saturating_add(1)
        } else {
            1
        };
        let ref_idx = idx.checked_sub(delta_idx).ok_or("RefRpsIdx out of range")?;
        let reference = sets.get(usize::try_from(ref_idx).map_err(|_| "RefRpsIdx")?).ok_or("RefRpsIdx out of range")?;
        let sign = r.flag()?;
        let abs = i32::try_from(r.ue_max((1 << 15) - 1, "abs_delta_rps_minus1 out of range")?)
            .map_err(|_| "abs_delta_rps")?
            .saturating_add(1);
        let delta_rps = if sign { abs.saturating_neg() } else { abs };
        // used_by_curr_pic_flag[j], use_delta_flag[j] (inferred 1) for j = 0..=NumDeltaPocs.
        let mut flags = Vec::new();
        for _ in 0..=reference.num_delta_pocs() {
            let used = r.flag()?;
            let use_delta = used || r.flag()?;
            flags.push((used, use_delta));
        }
        let flag = |j: usize| flags.get(j).copied().unwrap_or((false, false));
        let n_neg = reference.s0.len();
        let n_all = reference.num_delta_pocs();
        // (7-61)
        for (j, &(d, _)) in reference.s1.iter().enumerate().rev() {
            let d_poc = d.saturating_add(delta_rps);
            let (used, use_delta) = flag(n_neg.saturating_add(j));
            if d_poc < 0 && use_delta {
                out.s0.push((d_poc, used));
            }
        }
        let (used, use_delta) = flag(n_all);
        if delta_rps < 0 && use_delta {
            out.s0.push((delta_rps, used));
        }
        for (j, &(d, _)) in reference.s0.iter().enumerate() {
            let d_poc = d.saturating_add(delta_rps);
            let (used, use_delta) = flag(j);
            if d_poc < 0 && use_delta {
                out.s0.push((d_poc, used));
            }
        }
        // (7-62)
        for (j, &(d, _)) in reference.s0.iter().enumerate().rev() {
            let d_poc = d.saturating_add(delta_rps);
            let (used, use_delta) = flag(j);
            if d_poc > 0 && use_delta {
                out.s1.push((d_poc, used));
            }
        }
        if delta_rps > 0 && use_delta {
            out.s1.push((delta_rps, used));
        }
        for (j, &(d, _)) in reference.s1.iter().enumerate() {
            let d_poc = d.saturating_add(delta_rps);
            let (used, use_delta) = flag(n_neg.saturating_add(j));
            if d_poc > 0 && use_delta {
                out.s1.push((d_poc, used));
            }
        }
    }
    if out.s0.len() > MAX_RPS_PICS || out.s1.len() > MAX_RPS_PICS {
        return Err("reference picture set too large");
    }
    Ok(out)
}

/// vui_parameters() (E.2.1) and the SPS extensions; returns motion_vector_resolution_control_idc.
fn sps_tail(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u32,
    chroma_format_idc: u32,
    bit_depth_luma: u32,
    bit_depth_chroma: u32,
) -> Parse<u32> {
    if r.flag()? {
        vui_parameters(r, max_sub_layers_minus1)?;
    }
    if !r.flag()? {
        // sps_extension_present_flag
        return Ok(0);
    }
    let range = r.flag()?;
    let multilayer = r.flag()?;
    let three_d = r.flag()?;
    let scc = r.flag()?;
    r.skip(4)?; // sps_extension_4bits
    if range {
        r.skip(9)?; // sps_range_extension() (§7.3.2.2.2): nine flags
    }
    if multilayer {
        r.skip(1)?; // inter_view_mv_vert_constraint_flag (F.7.3.2.2.4)
    }
    if three_d {
        // sps_3d_extension() (I.7.3.2.2.5)
        for d in 0..2 {
            r.skip(2)?; // iv_di_mc_enabled_flag, iv_mv_scal_enabled_flag
            if d == 0 {
                r.ue()?; // log2_ivmc_sub_pb_size_minus3
                r.skip(4)?; // iv_res_pred, depth_ref, vsp_mc, dbbp enabled flags
            } else {
                r.skip(1)?; // tex_mc_enabled_flag
                r.ue()?; // log2_texmc_sub_pb_size_minus3
                r.skip(5)?; // intra_contour … skip_intra enabled flags
            }
        }
    }
    if !scc {
        return Ok(0);
    }
    // sps_scc_extension() (§7.3.2.2.3)
    r.skip(1)?; // sps_curr_pic_ref_enabled_flag
    if r.flag()? {
        // palette_mode_enabled_flag
        r.ue()?; // palette_max_size
        r.ue()?; // delta_palette_max_predictor_size
        if r.flag()? {
            let n = r.ue_max(127, "sps_num_palette_predictor_initializers_minus1 out of range")?.saturating_add(1);
            let comps = if chroma_format_idc == 0 { 1 } else { 3 };
            for comp in 0..comps {
                let bits = if comp == 0 { bit_depth_luma } else { bit_depth_chroma };
                for _ in 0..n {
                    r.skip(bits)?;
                }
            }
        }
    }
    let idc = r.u(2)?;
    r.skip(1)?; // intra_boundary_filtering_disabled_flag
    Ok(idc)
}

/// vui_parameters() (E.2.1), consumed only.
fn vui_parameters(r: &mut BitReader<'_>, max_sub_layers_minus1: u32) -> Parse<()> {
    if r.flag()? && r.u(8)? == 255 {
        // aspect_ratio_info_present_flag, aspect_ratio_idc == EXTENDED_SAR
        r.skip(32)?; // sar_width, sar_height
    }
    if r.flag()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.flag()? {
        // video_signal_type_present_flag
        r.skip(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.skip(24)?; // colour_primaries, transfer_characteristics, matrix_coeffs
        }
    }
    if r.flag()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // chroma_sample_loc_type_bottom_field
    }
    r.skip(3)?; // neutral_chroma_indication, field_seq, frame_field_info_present flags
    if r.flag()? {
        // default_display_window_flag
        for _ in 0..4 {
            r.ue()?;
        }
    }
    if r.flag()? {
        // vui_timing_info_present_flag
        r.skip(64)?; // vui_num_units_in_tick, vui_time_scale
        if r.flag()? {
            r.ue()?; // vui_num_ticks_poc_diff_one_minus1
        }
        if r.flag()? {
            hrd_parameters(r, true, max_sub_layers_minus1)?;
        }
    }
    if r.flag()? {
        // bitstream_restriction_flag
        r.skip(3)?;
        for _ in 0..5 {
            r.ue()?;
        }
    }
    Ok(())
}

/// hrd_parameters() (E.2.2), consumed only.
fn hrd_parameters(r: &mut BitReader<'_>, common_inf_present: bool, max_sub_layers_minus1: u32) -> Parse<()> {
    let (mut nal, mut vcl, mut sub_pic) = (false, false, false);
    if common_inf_present {
        nal = r.flag()?;
        vcl = r.flag()?;
        if nal || vcl {
            sub_pic = r.flag()?;
            if sub_pic {
                r.skip(8 + 5 + 1 + 5)?;
            }
            r.skip(8)?; // bit_rate_scale, cpb_size_scale
            if sub_pic {
                r.skip(4)?; // cpb_size_du_scale
            }
            r.skip(15)?; // three delay lengths
        }
    }
    for _ in 0..=max_sub_layers_minus1 {
        let fixed_general = r.flag()?;
        let fixed_within_cvs = fixed_general || r.flag()?;
        let mut low_delay = false;
        if fixed_within_cvs {
            r.ue()?; // elemental_duration_in_tc_minus1
        } else {
            low_delay = r.flag()?;
        }
        let cpb_cnt = if low_delay { 0 } else { r.ue_max(31, "cpb_cnt_minus1 out of range")? };
        for present in [nal, vcl] {
            if present {
                for _ in 0..=cpb_cnt {
                    r.ue()?; // bit_rate_value_minus1
                    r.ue()?; // cpb_size_value_minus1
                    if sub_pic {
                        r.ue()?; // cpb_size_du_value_minus1
                        r.ue()?; // bit_rate_du_value_minus1
                    }
                    r.skip(1)?; // cbr_flag
                }
            }
        }
    }
    Ok(())
}

/// pic_parameter_set_rbsp() (§7.3.2.3.1) of layer 0.
pub(super) fn parse_pps(payload: &[u8]) -> Parse<(usize, Pps)> {
    let mut r = BitReader::new(payload);
    let id = r.ue_max(63, "pps_pic_parameter_set_id out of range")?;
    let sps_id = r.ue_max(15, "pps_seq_parameter_set_id out of range")?;
    let dependent_slice_segments_enabled = r.flag()?;
    let output_flag_present = r.flag()?;
    let num_extra_slice_header_bits = r.u(3)?;
    r.skip(1)?; // sign_data_hiding_enabled_flag
    let cabac_init_present = r.flag()?;
    let num_ref_idx_l0_default_minus1 = r.ue_max(14, "num_ref_idx_l0_default_active_minus1 out of range")?;
    let num_ref_idx_l1_default_minus1 = r.ue_max(14, "num_ref_idx_l1_default_active_minus1 out of range")?;
    r.se()?; // init_qp_minus26
    r.skip(1)?; // constrained_intra_pred_flag
    let transform_skip_enabled = r.flag()?;
    if r.flag()? {
        r.ue()?; // cu_qp_delta_enabled_flag → diff_cu_qp_delta_depth
    }
    r.se()?; // pps_cb_qp_offset
    r.se()?; // pps_cr_qp_offset
    let slice_chroma_qp_offsets_present = r.flag()?;
    let weighted_pred = r.flag()?;
    let weighted_bipred = r.flag()?;
    r.skip(1)?; // transquant_bypass_enabled_flag
    let tiles_enabled = r.flag()?;
    let entropy_coding_sync_enabled = r.flag()?;
    let (mut num_tile_columns, mut num_tile_rows) = (1u64, 1u64);
    if tiles_enabled {
        let cols = r.ue_max(MAX_TILES, "num_tile_columns_minus1 out of range")?;
        let rows = r.ue_max(MAX_TILES, "num_tile_rows_minus1 out of range")?;
        if !r.flag()? {
            // uniform_spacing_flag == 0: column widths, row heights
            for _ in 0..cols.saturating_add(rows) {
                r.ue()?;
            }
        }
        r.skip(1)?; // loop_filter_across_tiles_enabled_flag
        num_tile_columns = u64::from(cols).saturating_add(1);
        num_tile_rows = u64::from(rows).saturating_add(1);
    }
    let loop_filter_across_slices_enabled = r.flag()?;
    let (mut deblocking_filter_override_enabled, mut deblocking_filter_disabled) = (false, false);
    if r.flag()? {
        // deblocking_filter_control_present_flag
        deblocking_filter_override_enabled = r.flag()?;
        deblocking_filter_disabled = r.flag()?;
        if !deblocking_filter_disabled {
            r.se()?; // pps_beta_offset_div2
            r.se()?; // pps_tc_offset_div2
        }
    }
    if r.flag()? {
        scaling_list_data(&mut r)?;
    }
    let lists_modification_present = r.flag()?;
    r.ue()?; // log2_parallel_merge_level_minus2
    let slice_segment_header_extension_present = r.flag()?;
    let (mut range, mut multilayer, mut three_d, mut scc) = (false, false, false, false);
    if r.flag()? {
        // pps_extension_present_flag
        range = r.flag()?;
        multilayer = r.flag()?;
        three_d = r.flag()?;
        scc = r.flag()?;
        r.skip(4)?; // pps_extension_4bits
    }
    let mut chroma_qp_offset_list_enabled = false;
    if range {
        // pps_range_extension() (§7.3.2.3.2)
        if transform_skip_enabled {
            r.ue()?; // log2_max_transform_skip_block_size_minus2
        }
        r.skip(1)?; // cross_component_prediction_enabled_flag
        chroma_qp_offset_list_enabled = r.flag()?;
        if chroma_qp_offset_list_enabled {
            r.ue()?; // diff_cu_chroma_qp_offset_depth
            let len = r.ue_max(5, "chroma_qp_offset_list_len_minus1 out of range")?;
            for _ in 0..=len {
                r.se()?; // cb_qp_offset_list
                r.se()?; // cr_qp_offset_list
            }
        }
        r.ue()?; // log2_sao_offset_scale_luma
        r.ue()?; // log2_sao_offset_scale_chroma
    }
    let (mut slice_act_qp_offsets_present, mut curr_pic_ref_enabled) = (false, false);
    if scc {
        if multilayer || three_d {
            // The SCC fields sit behind extensions whose syntax we do not parse.
            return Err("PPS SCC extension after other extensions is not supported");
        }
        // pps_scc_extension() (§7.3.2.3.3)
        curr_pic_ref_enabled = r.flag()?;
        if r.flag()? {
            // residual_adaptive_colour_transform_enabled_flag
            slice_act_qp_offsets_present = r.flag()?;
        }
    }
    let pps = Pps {
        sps_id: usize::try_from(sps_id).map_err(|_| "SPS id")?,
        dependent_slice_segments_enabled,
        output_flag_present,
        num_extra_slice_header_bits,
        cabac_init_present,
        num_ref_idx_l0_default_minus1,
        num_ref_idx_l1_default_minus1,
        slice_chroma_qp_offsets_present,
        weighted_pred,
        weighted_bipred,
        tiles_enabled,
        entropy_coding_sync_enabled,
        num_tile_columns,
        num_tile_rows,
        loop_filter_across_slices_enabled,
        deblocking_filter_override_enabled,
        deblocking_filter_disabled,
        lists_modification_present,
        slice_segment_header_extension_present,
        chroma_qp_offset_list_enabled,
        slice_act_qp_offsets_present,
        curr_pic_ref_enabled,
    };
    Ok((usize::try_from(id).map_err(|_| "PPS id")?, pps))
}
