//! Hand-built H.265 parameter sets and slice segment headers for syntax x265 (behind the Shaka
//! comparison in `oracle`) does not produce: sub-layer profiles, explicit scaling lists, PCM,
//! inter-predicted reference picture sets, long-term pictures, VUI with HRD, range and screen
//! content extensions, tiles with wavefronts, list modification, chroma weights, dependent slice
//! segments, header extensions, entry points whose 32-bit offsets need emulation prevention. Each
//! test writes the syntax of H.265 §7.3 for one configuration and checks that the parser stops
//! exactly where the writer did.

use super::testutil::{escape, BitWriter};
use super::{Inner, NalContext, Scheme};
use crate::crypto::Subsample;

/// NAL unit header (§7.3.1.2), temporal id 0.
fn nal_header(nal_type: u8, layer: u8) -> [u8; 2] {
    [(nal_type << 1) | (layer >> 5), (layer << 3) | 1]
}

fn nal(nal_type: u8, w: BitWriter) -> Vec<u8> {
    [nal_header(nal_type, 0).to_vec(), escape(&w.bytes)].concat()
}

/// profile_tier_level(1, max_sub_layers_minus1) with sub-layer 0 profile and level present.
fn ptl(w: &mut BitWriter, profile_idc: u64, max_sub_layers_minus1: u64) {
    w.u(3, 0);
    w.u(5, profile_idc);
    w.u(32, 1 << (31 - profile_idc)); // general_profile_compatibility_flag[profile_idc]
    w.u(4, 0b1001);
    w.u(44, 0);
    w.u(8, 93);
    for i in 0..max_sub_layers_minus1 {
        w.flag(i == 0); // sub_layer_profile_present_flag
        w.flag(i == 0); // sub_layer_level_present_flag
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            w.u(2, 0);
        }
    }
    if max_sub_layers_minus1 > 0 {
        w.u(44, 0x123);
        w.u(44, 0);
        w.u(8, 90);
    }
}

/// scaling_list_data() with explicit lists for some matrices and predicted ones for the others.
fn scaling_list_data(w: &mut BitWriter) {
    for size_id in 0..4 {
        let step = if size_id == 3 { 3 } else { 1 };
        for matrix_id in (0..6).step_by(step) {
            let explicit = (size_id + matrix_id) % 2 == 0;
            w.flag(explicit);
            if !explicit {
                // scaling_list_pred_matrix_id_delta: at most matrixId (matrixId / 3 for 32×32)
                w.ue(if size_id == 3 { matrix_id / 3 } else { matrix_id.min(1) });
                continue;
            }
            let coefs = if size_id == 0 { 16 } else { 64 };
            if size_id > 1 {
                w.se(-3); // scaling_list_dc_coef_minus8
            }
            for i in 0..coefs {
                w.se(if i % 3 == 0 { 2 } else { -1 });
            }
        }
    }
}

/// The everything SPS: SCC profile (so the VUI and extensions are parsed strictly), 2 sub-layers,
/// 160×96 in 16×16 CTBs (10 × 6), 8-bit POC LSBs, three short-term sets (the second predicted from
/// the first, the third from the second), two long-term pictures, VUI with HRD, range + SCC extensions
/// (motion_vector_resolution_control_idc 2).
fn full_sps() -> Vec<u8> {
    let mut w = BitWriter::new();
    w.u(4, 0); // sps_video_parameter_set_id
    w.u(3, 1); // sps_max_sub_layers_minus1
    w.flag(true);
    ptl(&mut w, 9, 1);
    w.ue(0); // sps_seq_parameter_set_id
    w.ue(1); // chroma_format_idc
    w.ue(160);
    w.ue(96);
    w.flag(true); // conformance_window_flag
    for v in [0, 2, 0, 1] {
        w.ue(v);
    }
    w.ue(0);
    w.ue(0);
    w.ue(4); // log2_max_pic_order_cnt_lsb_minus4
    w.flag(true); // sps_sub_layer_ordering_info_present_flag
    for _ in 0..2 {
        w.ue(4);
        w.ue(2);
        w.ue(0);
    }
    w.ue(0); // log2_min_luma_coding_block_size_minus3
    w.ue(1); // log2_diff_max_min_luma_coding_block_size
    w.ue(0);
    w.ue(2);
    w.ue(1);
    w.ue(1);
    w.flag(true); // scaling_list_enabled_flag
    w.flag(true); // sps_scaling_list_data_present_flag
    scaling_list_data(&mut w);
    w.flag(true); // amp
    w.flag(true); // sample_adaptive_offset_enabled_flag
    w.flag(true); // pcm_enabled_flag
    w.u(4, 7);
    w.u(4, 7);
    w.ue(0);
    w.ue(1);
    w.flag(false);
    w.ue(3); // num_short_term_ref_pic_sets
             // Set 0: S0 = {−1 used, −2 unused}, S1 = {+1 used}.
    w.ue(2);
    w.ue(1);
    w.ue(0);
    w.flag(true);
    w.ue(0);
    w.flag(false);
    w.ue(0);
    w.flag(true);
    // Set 1 from set 0 with deltaRps −1: S0 = {−1 used, −2 used, −3 unused}, S1 = {}.
    w.flag(true); // inter_ref_pic_set_prediction_flag
    w.flag(true); // delta_rps_sign
    w.ue(0); // abs_delta_rps_minus1
    w.flag(true); // j0 used
    w.flag(false); // j1 not used …
    w.flag(true); // … but kept
    w.flag(true); // j2 used
    w.flag(true); // j3 (deltaRps itself) used
                  // Set 2 from set 1 with deltaRps +1, dropping the deltaRps entry itself:
                  // S0 = {−1 used, −2 unused}, S1 = {}.
    w.flag(true);
    w.flag(false);
    w.ue(0);
    w.flag(true); // j0 used (−1 + 1 = 0: not kept)
    w.flag(true); // j1 used
    w.flag(false); // j2 not used,
    w.flag(true); // kept
    w.flag(false); // j3 (deltaRps) not used,
    w.flag(false); // dropped
    w.flag(true); // long_term_ref_pics_present_flag
    w.ue(2);
    w.u(8, 5);
    w.flag(true);
    w.u(8, 9);
    w.flag(false);
    w.flag(true); // sps_temporal_mvp_enabled_flag
    w.flag(false);
    w.flag(true); // vui_parameters_present_flag
    vui(&mut w);
    w.flag(true); // sps_extension_present_flag
    w.flag(true); // range
    w.flag(false); // multilayer
    w.flag(false); // 3d
    w.flag(true); // scc
    w.u(4, 0);
    w.u(9, 0b101010101); // sps_range_extension
    w.flag(true); // sps_curr_pic_ref_enabled_flag
    w.flag(true); // palette_mode_enabled_flag
    w.ue(31);
    w.ue(8);
    w.flag(true); // sps_palette_predictor_initializers_present_flag
    w.ue(1);
    for i in 0..6 {
        w.u(8, 16 * i);
    }
    w.u(2, 2); // motion_vector_resolution_control_idc
    w.flag(false);
    w.trailing();
    nal(33, w)
}

fn vui(w: &mut BitWriter) {
    w.flag(true);
    w.u(8, 255); // EXTENDED_SAR
    w.u(16, 4);
    w.u(16, 3);
    w.flag(true);
    w.flag(false);
    w.flag(true); // video_signal_type_present_flag
    w.u(3, 5);
    w.flag(false);
    w.flag(true);
    w.u(24, 0x010101);
    w.flag(true); // chroma_loc_info_present_flag
    w.ue(1);
    w.ue(1);
    w.u(3, 0);
    w.flag(true); // default_display_window_flag
    for v in [0, 0, 8, 8] {
        w.ue(v);
    }
    w.flag(true); // vui_timing_info_present_flag
    w.u(32, 1);
    w.u(32, 25);
    w.flag(true);
    w.ue(0);
    w.flag(true); // vui_hrd_parameters_present_flag
                  // hrd_parameters(1, 1): NAL and VCL, sub-picture parameters.
    w.flag(true);
    w.flag(true);
    w.flag(true); // sub_pic_hrd_params_present_flag
    w.u(19, 0x1234);
    w.u(8, 0x45);
    w.u(4, 2);
    w.u(15, 0x7fff);
    // Sub-layer 0: fixed rate, two CPBs.
    w.flag(true);
    w.ue(0);
    w.ue(1); // cpb_cnt_minus1
    for _ in 0..2 * 2 {
        w.ue(1000);
        w.ue(2000);
        w.ue(3);
        w.ue(4);
        w.flag(true);
    }
    // Sub-layer 1: not fixed, low delay, one CPB.
    w.flag(false);
    w.flag(false);
    w.flag(true); // low_delay_hrd_flag
    for _ in 0..2 {
        w.ue(10);
        w.ue(20);
        w.ue(3);
        w.ue(4);
        w.flag(false);
    }
    w.flag(true); // bitstream_restriction_flag
    w.u(3, 0);
    for v in [0, 2, 1, 15, 15] {
        w.ue(v);
    }
}

/// The everything PPS: dependent slices, output flag, 2 extra header bits, CABAC init, default
/// l0 2 / l1 1, chroma QP offsets, weighted P and B, 2×2 non-uniform tiles + wavefronts, deblocking
/// override, list modification, header extension, range (chroma QP offset list) and SCC
/// (ACT QP offsets) extensions.
fn full_pps() -> Vec<u8> {
    let mut w = BitWriter::new();
    w.ue(0);
    w.ue(0);
    w.flag(true); // dependent_slice_segments_enabled_flag
    w.flag(true); // output_flag_present_flag
    w.u(3, 2); // num_extra_slice_header_bits
    w.flag(false);
    w.flag(true); // cabac_init_present_flag
    w.ue(1);
    w.ue(0);
    w.se(-2);
    w.flag(false);
    w.flag(true); // transform_skip_enabled_flag
    w.flag(true);
    w.ue(1);
    w.se(1);
    w.se(-1);
    w.flag(true); // pps_slice_chroma_qp_offsets_present_flag
    w.flag(true); // weighted_pred_flag
    w.flag(true); // weighted_bipred_flag
    w.flag(false);
    w.flag(true); // tiles_enabled_flag
    w.flag(true); // entropy_coding_sync_enabled_flag
    w.ue(1);
    w.ue(1);
    w.flag(false); // uniform_spacing_flag
    w.ue(4);
    w.ue(2);
    w.flag(true);
    w.flag(true); // pps_loop_filter_across_slices_enabled_flag
    w.flag(true); // deblocking_filter_control_present_flag
    w.flag(true); // deblocking_filter_override_enabled_flag
    w.flag(false); // pps_deblocking_filter_disabled_flag
    w.se(1);
    w.se(-1);
    w.flag(true); // pps_scaling_list_data_present_flag
    scaling_list_data(&mut w);
    w.flag(true); // lists_modification_present_flag
    w.ue(0);
    w.flag(true); // slice_segment_header_extension_present_flag
    w.flag(true); // pps_extension_present_flag
    w.flag(true); // range
    w.flag(false);
    w.flag(false);
    w.flag(true); // scc
    w.u(4, 0);
    w.ue(0); // log2_max_transform_skip_block_size_minus2
    w.flag(false);
    w.flag(true); // chroma_qp_offset_list_enabled_flag
    w.ue(0);
    w.ue(1);
    for v in [1, -1, 2, -2] {
        w.se(v);
    }
    w.ue(0);
    w.ue(0);
    w.flag(false); // pps_curr_pic_ref_enabled_flag
    w.flag(true); // residual_adaptive_colour_transform_enabled_flag
    w.flag(true); // pps_slice_act_qp_offsets_present_flag
    w.se(0);
    w.se(0);
    w.se(0);
    w.flag(false);
    w.trailing();
    nal(34, w)
}

fn hvcc(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut r = vec![1, 0x09, 0, 0x40, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f];
    r.push(nals.len() as u8);
    for n in nals {
        r.push(0x80 | (n[0] >> 1));
        r.extend(1u16.to_be_bytes());
        r.extend((n.len() as u16).to_be_bytes());
        r.extend(n);
    }
    r
}

struct Slice {
    nal: Vec<u8>,
    clear: usize,
    bits: u64,
}

/// A slice segment NAL unit whose header `w` already ends with byte_alignment().
fn slice(nal_type: u8, w: BitWriter) -> Slice {
    assert_eq!(w.bit_len() % 8, 0);
    let bits = u64::from(w.bit_len());
    let header = escape(&w.bytes);
    let mut rbsp = w.bytes;
    rbsp.extend([0x00, 0x00, 0x01, 0x77, 0x88, 0x99]);
    rbsp.extend([0xa5; 60]);
    Slice { nal: [nal_header(nal_type, 0).to_vec(), escape(&rbsp)].concat(), clear: 2 + header.len(), bits }
}

fn byte_alignment(w: &mut BitWriter) {
    w.trailing();
}

fn assert_slice(ctx: &mut NalContext, s: &Slice) {
    let Inner::Hevc(hevc) = &ctx.inner else { panic!("not HEVC") };
    assert_eq!(hevc.header_bits(&s.nal), Ok(s.bits), "slice header bits");
    let mut sample = (s.nal.len() as u32).to_be_bytes().to_vec();
    sample.extend(&s.nal);
    let map = ctx.subsamples(&sample, Scheme::Cbcs).unwrap();
    assert_eq!(map, vec![Subsample { clear: 4 + s.clear as u16, protected: (s.nal.len() - s.clear) as u32 }]);
}

fn full_ctx() -> NalContext {
    NalContext::from_hvcc(&hvcc(&[full_sps(), full_pps()])).unwrap()
}

/// A B slice segment of TRAIL_R using every optional field of the full SPS/PPS.
fn full_b_slice(entry_points: u64) -> BitWriter {
    let mut w = BitWriter::new();
    w.flag(false); // first_slice_segment_in_pic_flag
    w.ue(0); // slice_pic_parameter_set_id
    w.flag(false); // dependent_slice_segment_flag
    w.u(6, 17); // slice_segment_address: Ceil(Log2(60)) bits
    w.u(2, 3); // slice_reserved_flag × 2
    w.ue(0); // B
    w.flag(true); // pic_output_flag
    w.u(8, 77);
    w.flag(false); // short_term_ref_pic_set_sps_flag: own set, predicted from set 2
    w.flag(true);
    w.ue(0); // delta_idx_minus1
    w.flag(false);
    w.ue(1); // deltaRps +2
    w.flag(true); // j0 used
    w.flag(false); // j1 not used,
    w.flag(true); // kept
    w.flag(true); // j2 (deltaRps) used → S0 = {}, S1 = {+1 used, +2 used}
    w.ue(1); // num_long_term_sps
    w.ue(1); // num_long_term_pics
    w.u(1, 0); // lt_idx_sps 0: used
    w.flag(true);
    w.ue(3);
    w.u(8, 200); // poc_lsb_lt
    w.flag(true); // used → NumPicTotalCurr = 2 + 1 + 1 = 4
    w.flag(false);
    w.flag(true); // slice_temporal_mvp_enabled_flag
    w.flag(true); // slice_sao_luma_flag
    w.flag(false); // slice_sao_chroma_flag
    w.flag(true); // num_ref_idx_active_override_flag
    w.ue(2);
    w.ue(1);
    w.flag(true); // ref_pic_list_modification_flag_l0: 3 entries of 2 bits
    for e in [3, 0, 2] {
        w.u(2, e);
    }
    w.flag(true); // l1: 2 entries
    w.u(2, 1);
    w.u(2, 1);
    w.flag(false); // mvd_l1_zero_flag
    w.flag(true); // cabac_init_flag
    w.flag(false); // collocated_from_l0_flag 0, l1 has 2 entries
    w.ue(1); // collocated_ref_idx
             // pred_weight_table: l0 3 entries, l1 2 entries, ChromaArrayType 1
    w.ue(3);
    w.se(1);
    for (luma, chroma) in [(vec![true, false, false], vec![false, true, false]), (vec![false, true], vec![true, true])]
    {
        luma.iter().for_each(|&f| w.flag(f));
        chroma.iter().for_each(|&f| w.flag(f));
        for (l, c) in luma.iter().zip(&chroma) {
            if *l {
                w.se(2);
                w.se(-1);
            }
            if *c {
                for v in [1, -1, 3, -3] {
                    w.se(v);
                }
            }
        }
    }
    w.ue(2); // five_minus_max_num_merge_cand
    w.flag(true); // use_integer_mv_flag
    w.se(-3);
    w.se(1);
    w.se(-1);
    for _ in 0..3 {
        w.se(0); // slice_act_*_qp_offset
    }
    w.flag(true); // cu_chroma_qp_offset_enabled_flag
    w.flag(true); // deblocking_filter_override_flag
    w.flag(false);
    w.se(2);
    w.se(-2);
    w.flag(true); // slice_loop_filter_across_slices_enabled_flag
    w.ue(entry_points);
    if entry_points > 0 {
        w.ue(31); // 32-bit offsets of small values: runs of zero bytes
        for i in 0..entry_points {
            w.u(32, i % 3);
        }
    }
    w.ue(2); // slice_segment_header_extension_length
    w.u(16, 0);
    byte_alignment(&mut w);
    w
}

#[test]
fn b_slice_with_every_optional_field() {
    let mut c = full_ctx();
    let s = slice(1, full_b_slice(3));
    assert!(s.nal[2..s.clear].windows(3).filter(|x| *x == [0, 0, 3]).count() >= 3);
    assert_slice(&mut c, &s);
}

#[test]
fn entry_points_are_bounded_by_tiles_and_ctb_rows() {
    // Tiles and wavefronts: at most (num_tile_columns_minus1 + 1) · PicHeightInCtbsY − 1 = 11.
    let mut c = full_ctx();
    assert_slice(&mut c, &slice(1, full_b_slice(11)));
    let s = slice(1, full_b_slice(12));
    let mut sample = (s.nal.len() as u32).to_be_bytes().to_vec();
    sample.extend(&s.nal);
    assert!(c.subsamples(&sample, Scheme::Cbcs).is_err());
}

#[test]
fn misaligned_header_end_is_an_error() {
    let mut c = full_ctx();
    let w = full_b_slice(1);
    let mut bytes = w.bytes.clone();
    // Clear alignment_bit_equal_to_one (the last set bit of the header).
    let last = bytes.iter().rposition(|&b| b != 0).unwrap();
    let bit = bytes[last].trailing_zeros();
    bytes[last] &= !(1 << bit);
    let mut s = Vec::new();
    let mut n = nal_header(1, 0).to_vec();
    n.extend(escape(&[bytes, vec![0x80; 20]].concat()));
    s.extend((n.len() as u32).to_be_bytes());
    s.extend(&n);
    assert!(c.subsamples(&s, Scheme::Cbcs).is_err());
}

#[test]
fn dependent_slice_segment_skips_to_the_entry_points() {
    let mut c = full_ctx();
    let mut w = BitWriter::new();
    w.flag(false);
    w.ue(0);
    w.flag(true); // dependent_slice_segment_flag
    w.u(6, 40);
    w.ue(2); // num_entry_point_offsets
    w.ue(4);
    w.u(5, 17);
    w.u(5, 3);
    w.ue(0); // slice_segment_header_extension_length
    byte_alignment(&mut w);
    assert_slice(&mut c, &slice(1, w));
}

/// A plain Main-profile SPS/PPS: 4:2:0, 64×64 CTBs over 352×192 (6 × 3), one short-term set
/// {−1 used}, SAO, no VUI.
fn main_sps(profile_idc: u64, vui_garbage: bool) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.u(4, 0);
    w.u(3, 0);
    w.flag(true);
    ptl(&mut w, profile_idc, 0);
    w.ue(0);
    w.ue(1);
    w.ue(352);
    w.ue(192);
    w.flag(false);
    w.ue(0);
    w.ue(0);
    w.ue(0); // 4-bit POC LSBs
    w.flag(false);
    w.ue(3);
    w.ue(0);
    w.ue(0);
    w.ue(0); // MinCb 8
    w.ue(3); // CTB 64
    w.ue(0);
    w.ue(3);
    w.ue(1);
    w.ue(1);
    w.flag(false);
    w.flag(false);
    w.flag(true); // SAO
    w.flag(false);
    w.ue(1);
    w.ue(1);
    w.ue(0); // num_positive_pics
    w.ue(0); // delta_poc_s0_minus1
    w.flag(true); // used_by_curr_pic_s0_flag
    w.flag(false); // long_term_ref_pics_present_flag
    w.flag(false); // sps_temporal_mvp_enabled_flag
    w.flag(true); // strong_intra_smoothing_enabled_flag
    if vui_garbage {
        // vui_parameters_present_flag, then a VUI cut short inside sar_width.
        w.flag(true);
        w.flag(true);
        w.u(8, 255);
        w.u(4, 0);
        return nal(33, w);
    }
    w.flag(false); // vui_parameters_present_flag
    w.flag(false); // sps_extension_present_flag
    w.trailing();
    nal(33, w)
}

fn main_pps(id: u64) -> Vec<u8> {
    pps_with_deblocking(id, false)
}

/// The plain PPS; `deblocking_disabled` adds deblocking_filter_control_present_flag with
/// pps_deblocking_filter_disabled_flag 1 and no override.
fn pps_with_deblocking(id: u64, deblocking_disabled: bool) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.ue(id);
    w.ue(0);
    w.flag(false);
    w.flag(false);
    w.u(3, 0);
    w.flag(true);
    w.flag(false);
    w.ue(0);
    w.ue(0);
    w.se(0);
    w.flag(false);
    w.flag(false);
    w.flag(false);
    w.se(0);
    w.se(0);
    w.flag(false);
    w.flag(false);
    w.flag(false);
    w.flag(false);
    w.flag(false);
    w.flag(false);
    w.flag(true); // pps_loop_filter_across_slices_enabled_flag
    w.flag(deblocking_disabled); // deblocking_filter_control_present_flag
    if deblocking_disabled {
        w.flag(false); // deblocking_filter_override_enabled_flag
        w.flag(true); // pps_deblocking_filter_disabled_flag
    }
    w.flag(false);
    w.flag(false);
    w.ue(0);
    w.flag(false);
    w.flag(false);
    w.trailing();
    nal(34, w)
}

#[test]
fn idr_cra_and_trailing_pictures() {
    let mut c = NalContext::from_hvcc(&hvcc(&[main_sps(1, false), main_pps(0)])).unwrap();
    // IDR_N_LP: no POC, no reference set.
    let mut w = BitWriter::new();
    w.flag(true);
    w.flag(false); // no_output_of_prior_pics_flag
    w.ue(0);
    w.ue(2); // I
    w.flag(true);
    w.flag(true); // SAO
    w.se(4);
    w.flag(true); // slice_loop_filter_across_slices_enabled_flag
    byte_alignment(&mut w);
    assert_slice(&mut c, &slice(20, w));
    // CRA: no_output_of_prior_pics_flag, POC, the SPS's only set (no index bits).
    let mut w = BitWriter::new();
    w.flag(true);
    w.flag(true);
    w.ue(0);
    w.ue(2);
    w.u(4, 8);
    w.flag(true); // short_term_ref_pic_set_sps_flag
    w.flag(false);
    w.flag(false);
    w.se(-1);
    w.flag(false);
    byte_alignment(&mut w);
    assert_slice(&mut c, &slice(21, w));
    // TRAIL_N P slice, second segment: address in Ceil(Log2(18)) = 5 bits.
    let mut w = BitWriter::new();
    w.flag(false);
    w.ue(0);
    w.u(5, 9);
    w.ue(1); // P
    w.u(4, 9);
    w.flag(true);
    w.flag(true);
    w.flag(true);
    w.flag(false); // num_ref_idx_active_override_flag
    w.ue(0); // five_minus_max_num_merge_cand
    w.se(2);
    w.flag(true);
    byte_alignment(&mut w);
    assert_slice(&mut c, &slice(0, w));
}

#[test]
fn deblocking_disabled_in_the_pps_is_inherited_by_the_slice() {
    // slice_deblocking_filter_disabled_flag is inferred from the PPS (1); with both SAO flags 0,
    // slice_loop_filter_across_slices_enabled_flag is then absent.
    let mut c = NalContext::from_hvcc(&hvcc(&[main_sps(1, false), pps_with_deblocking(0, true)])).unwrap();
    for sao in [false, true] {
        let mut w = BitWriter::new();
        w.flag(true);
        w.flag(false);
        w.ue(0);
        w.ue(2);
        w.flag(sao);
        w.flag(false);
        w.se(1);
        if sao {
            w.flag(true); // slice_loop_filter_across_slices_enabled_flag
        }
        byte_alignment(&mut w);
        assert_slice(&mut c, &slice(19, w));
    }
}

#[test]
fn in_band_parameter_sets_and_other_layers() {
    let mut c = NalContext::from_hvcc(&hvcc(&[main_sps(1, false), main_pps(0)])).unwrap();
    // A layer-1 PPS with id 5 and garbage is ignored; a layer-0 PPS 5 is taken.
    let mut garbage = nal_header(34, 1).to_vec();
    garbage.extend([0xff, 0x00, 0x00, 0x00]);
    let pps5 = main_pps(5);
    let mut w = BitWriter::new();
    w.flag(true);
    w.flag(false);
    w.ue(5);
    w.ue(2);
    w.flag(false);
    w.flag(false);
    w.se(0);
    w.flag(true);
    byte_alignment(&mut w);
    let s = slice(19, w);
    // A layer-1 slice and a reserved VCL type are left clear.
    let mut layer1 = nal_header(1, 1).to_vec();
    layer1.extend([0x80; 30]);
    let mut reserved = nal_header(22, 0).to_vec();
    reserved.extend([0x80; 30]);
    let mut sample = Vec::new();
    for n in [&garbage, &pps5, &s.nal, &layer1, &reserved] {
        sample.extend((n.len() as u32).to_be_bytes());
        sample.extend(n);
    }
    let map = c.subsamples(&sample, Scheme::Cbcs).unwrap();
    let lead = 4 + garbage.len() + 4 + pps5.len() + 4 + s.clear;
    let tail = 4 + layer1.len() + 4 + reserved.len();
    assert_eq!(
        map,
        vec![
            Subsample { clear: lead as u16, protected: (s.nal.len() - s.clear) as u32 },
            Subsample { clear: tail as u16, protected: 0 },
        ]
    );
}

#[test]
fn unreadable_vui_is_tolerated_unless_the_profile_may_use_scc() {
    assert!(NalContext::from_hvcc(&hvcc(&[main_sps(1, true), main_pps(0)])).is_ok());
    assert!(NalContext::from_hvcc(&hvcc(&[main_sps(9, true), main_pps(0)])).is_err());
    assert!(NalContext::from_hvcc(&hvcc(&[main_sps(9, false), main_pps(0)])).is_ok());
}

#[test]
fn malformed_records_are_errors() {
    let good = hvcc(&[full_sps(), full_pps()]);
    assert!(NalContext::from_hvcc(&good).is_ok());
    for n in 0..good.len() {
        let _ = NalContext::from_hvcc(&good[..n]);
    }
    assert!(NalContext::from_hvcc(&good[..good.len() - 1]).is_err());
    let mut v2 = good.clone();
    v2[0] = 2;
    assert!(NalContext::from_hvcc(&v2).is_err());
    let mut len3 = good.clone();
    len3[21] = 0xfe;
    assert!(NalContext::from_hvcc(&len3).is_err());
}
