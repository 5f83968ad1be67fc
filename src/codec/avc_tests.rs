//! Hand-built H.264 parameter sets and slice headers for syntax the encoders behind the Shaka
//! comparison (`oracle`) do not produce: field pictures, pic_order_cnt_type 1, SP/SI slices,
//! slice groups, separate colour planes, every MMCO, explicit B weights, emulation prevention at
//! the header's edges. Each test writes the syntax elements of H.264 §7.3 for one configuration
//! with a bit writer and checks that the parser stops exactly where the writer did.

use super::testutil::{escape, BitWriter};
use super::{Inner, NalContext, Scheme};
use crate::crypto::Subsample;

struct Sps {
    profile: u64,
    chroma_format_idc: u64,
    separate_colour_plane: bool,
    scaling: bool,
    frame_num_bits: u64,
    poc_type: u64,
    poc_lsb_bits: u64,
    delta_pic_order_always_zero: bool,
    frame_mbs_only: bool,
    width_mbs: u64,
    height_map_units: u64,
}

impl Default for Sps {
    fn default() -> Self {
        Sps {
            profile: 100,
            chroma_format_idc: 1,
            separate_colour_plane: false,
            scaling: false,
            frame_num_bits: 4,
            poc_type: 0,
            poc_lsb_bits: 6,
            delta_pic_order_always_zero: false,
            frame_mbs_only: true,
            width_mbs: 20,
            height_map_units: 12,
        }
    }
}

/// seq_parameter_set_rbsp() (§7.3.2.1.1) as a NAL unit.
fn sps_nal(s: &Sps, id: u64) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.u(8, s.profile);
    w.u(8, 0); // constraint flags
    w.u(8, 40); // level_idc
    w.ue(id);
    if [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135].contains(&s.profile) {
        w.ue(s.chroma_format_idc);
        if s.chroma_format_idc == 3 {
            w.flag(s.separate_colour_plane);
        }
        w.ue(0); // bit_depth_luma_minus8
        w.ue(2); // bit_depth_chroma_minus8
        w.flag(false); // qpprime_y_zero_transform_bypass_flag
        w.flag(s.scaling);
        if s.scaling {
            let lists = if s.chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                let present = i != 1;
                w.flag(present);
                if !present {
                    continue;
                }
                if i == 2 {
                    // delta_scale −8: nextScale 0 after the first entry, the list ends early.
                    w.se(-8);
                    continue;
                }
                let size = if i < 6 { 16 } else { 64 };
                for j in 0..size {
                    w.se(if j % 2 == 0 { 3 } else { -3 });
                }
            }
        }
    }
    w.ue(s.frame_num_bits - 4);
    w.ue(s.poc_type);
    if s.poc_type == 0 {
        w.ue(s.poc_lsb_bits - 4);
    } else if s.poc_type == 1 {
        w.flag(s.delta_pic_order_always_zero);
        w.se(-1); // offset_for_non_ref_pic
        w.se(2); // offset_for_top_to_bottom_field
        w.ue(3); // num_ref_frames_in_pic_order_cnt_cycle
        for v in [1, -1, 5] {
            w.se(v);
        }
    }
    w.ue(4); // max_num_ref_frames
    w.flag(false); // gaps_in_frame_num_value_allowed_flag
    w.ue(s.width_mbs - 1);
    w.ue(s.height_map_units - 1);
    w.flag(s.frame_mbs_only);
    if !s.frame_mbs_only {
        w.flag(true); // mb_adaptive_frame_field_flag
    }
    w.flag(true); // direct_8x8_inference_flag
    w.flag(false); // frame_cropping_flag
    w.flag(false); // vui_parameters_present_flag
    w.trailing();
    [vec![0x67], escape(&w.bytes)].concat()
}

#[derive(Default)]
struct Pps {
    cabac: bool,
    bottom_field_pic_order: bool,
    /// (slice_group_map_type, num_slice_groups_minus1, slice_group_change_rate_minus1)
    slice_groups: Option<(u64, u64, u64)>,
    l0: u64,
    l1: u64,
    weighted_pred: bool,
    weighted_bipred_idc: u64,
    deblocking: bool,
    redundant: bool,
}

/// pic_parameter_set_rbsp() (§7.3.2.2) as a NAL unit, with the optional tail.
fn pps_nal(p: &Pps, id: u64, sps_id: u64) -> Vec<u8> {
    let mut w = BitWriter::new();
    w.ue(id);
    w.ue(sps_id);
    w.flag(p.cabac);
    w.flag(p.bottom_field_pic_order);
    match p.slice_groups {
        None => w.ue(0),
        Some((map_type, groups_minus1, rate_minus1)) => {
            w.ue(groups_minus1);
            w.ue(map_type);
            match map_type {
                0 => (0..=groups_minus1).for_each(|_| w.ue(7)),
                2 => (0..groups_minus1).for_each(|_| {
                    w.ue(0);
                    w.ue(21);
                }),
                3..=5 => {
                    w.flag(true);
                    w.ue(rate_minus1);
                }
                6 => {
                    w.ue(239); // pic_size_in_map_units_minus1 (20 × 12 − 1)
                    let bits = 64 - groups_minus1.leading_zeros();
                    (0..240).for_each(|i| w.u(bits, i % (groups_minus1 + 1)));
                }
                _ => {}
            }
        }
    }
    w.ue(p.l0);
    w.ue(p.l1);
    w.flag(p.weighted_pred);
    w.u(2, p.weighted_bipred_idc);
    w.se(-3); // pic_init_qp_minus26
    w.se(0); // pic_init_qs_minus26
    w.se(2); // chroma_qp_index_offset
    w.flag(p.deblocking);
    w.flag(false); // constrained_intra_pred_flag
    w.flag(p.redundant);
    // more_rbsp_data(): transform_8x8_mode_flag, no scaling matrix, second_chroma_qp_index_offset
    w.flag(true);
    w.flag(false);
    w.se(-2);
    w.trailing();
    [vec![0x68], escape(&w.bytes)].concat()
}

/// avcC with the given SPS and PPS NAL units (14496-15 §5.3.3.1).
fn avcc(sps: &[Vec<u8>], pps: &[Vec<u8>]) -> Vec<u8> {
    let mut r = vec![1, 100, 0, 40, 0xff, 0xe0 | sps.len() as u8];
    for s in sps {
        r.extend((s.len() as u16).to_be_bytes());
        r.extend(s);
    }
    r.push(pps.len() as u8);
    for p in pps {
        r.extend((p.len() as u16).to_be_bytes());
        r.extend(p);
    }
    r
}

fn ctx(sps: &Sps, pps: &Pps) -> NalContext {
    NalContext::from_avcc(&avcc(&[sps_nal(sps, 0)], &[pps_nal(pps, 0, 0)])).unwrap()
}

/// A slice NAL unit: `header` byte, the slice header written by `w`, then slice data whose first
/// RBSP bytes are `data`.
struct Slice {
    nal: Vec<u8>,
    /// Expected clear bytes: NAL header + slice header rounded up to bytes, escaped.
    clear: usize,
    /// RBSP bits of the slice header.
    bits: u64,
}

fn slice(header: u8, w: BitWriter, data: &[u8]) -> Slice {
    let bits = u64::from(w.bit_len());
    let header_bytes = w.bit_len().div_ceil(8) as usize;
    let mut rbsp = w.bytes;
    rbsp.extend_from_slice(data);
    rbsp.extend([0x5a; 64]);
    let clear = 1 + escape(&rbsp[..header_bytes]).len();
    Slice { nal: [vec![header], escape(&rbsp)].concat(), clear, bits }
}

fn sample(nals: &[&[u8]]) -> Vec<u8> {
    let mut s = Vec::new();
    for n in nals {
        s.extend((n.len() as u32).to_be_bytes());
        s.extend_from_slice(n);
    }
    s
}

/// Asserts that the parser ends the slice header on the bit the writer did, and the cbcs map of a
/// one-slice sample: clear = length + NAL header + slice header.
fn assert_slice(ctx: &mut NalContext, s: Slice) {
    let Inner::Avc(avc) = &ctx.inner else { panic!("not AVC") };
    assert_eq!(avc.header_bits(&s.nal), Ok(s.bits), "slice header bits");
    let map = ctx.subsamples(&sample(&[&s.nal]), Scheme::Cbcs).unwrap();
    let expected = vec![Subsample { clear: 4 + s.clear as u16, protected: (s.nal.len() - s.clear) as u32 }];
    assert_eq!(map, expected);
}

#[test]
fn p_slice_with_emulation_prevention_inside_the_header() {
    // 16-bit frame_num and pic_order_cnt_lsb of 0: 32 zero bits need emulation prevention.
    let sps = Sps { frame_num_bits: 16, poc_lsb_bits: 16, ..Sps::default() };
    let mut c = ctx(&sps, &Pps { cabac: true, ..Pps::default() });
    let mut w = BitWriter::new();
    w.ue(0); // first_mb_in_slice
    w.ue(5); // slice_type P (all slices of the picture)
    w.ue(0); // pic_parameter_set_id
    w.u(16, 0); // frame_num
    w.u(16, 1); // pic_order_cnt_lsb
    w.flag(false); // num_ref_idx_active_override_flag
    w.flag(false); // ref_pic_list_modification_flag_l0
    w.flag(false); // nal_ref_idc 2: adaptive_ref_pic_marking_mode_flag
    w.ue(1); // cabac_init_idc
    w.se(-4); // slice_qp_delta
    let s = slice(0x41, w, &[]);
    assert!(s.nal[1..s.clear].windows(3).any(|x| x == [0, 0, 3]), "no emulation prevention in the header");
    assert_slice(&mut c, s);
}

#[test]
fn emulation_prevention_byte_right_after_the_header_is_not_clear() {
    // Slice groups of type 4 put slice_group_change_cycle (here 16 zero bits) last, so the header
    // can end on a byte boundary after two zero bytes; slice data starting with 0x01 then gets an
    // emulation prevention byte between header and data, which belongs to neither.
    let sps = Sps { width_mbs: 256, height_map_units: 256, ..Sps::default() };
    let pps = Pps { slice_groups: Some((4, 1, 0)), ..Pps::default() };
    let mut c = ctx(&sps, &pps);
    let mut found = false;
    for first_mb in 0..64 {
        let mut w = BitWriter::new();
        w.ue(first_mb);
        w.ue(7); // I
        w.ue(0);
        w.u(4, 3); // frame_num
        w.u(6, 9); // pic_order_cnt_lsb
        w.flag(false); // dec_ref_pic_marking: adaptive flag
        w.se(0); // slice_qp_delta
                 // Ceil(Log2(65536 ÷ 1 + 1)) = 17 bits
        w.u(17, 0);
        if !w.bit_len().is_multiple_of(8) {
            continue;
        }
        let s = slice(0x61, w, &[0x01]);
        assert_eq!(&s.nal[s.clear - 2..s.clear + 2], &[0, 0, 3, 1]);
        assert_slice(&mut c, s);
        found = true;
    }
    assert!(found);
}

#[test]
fn slice_group_change_cycle_width_uses_exact_division() {
    // Ceil(Log2(PicSizeInMapUnits ÷ SliceGroupChangeRate + 1)) without truncating the division:
    // 97 ÷ 32 + 1 = 4.03 → 3 bits (truncation would give 2); 96 ÷ 32 + 1 = 4 → 2 bits.
    for (width, bits) in [(97, 3), (96, 2)] {
        let sps = Sps { width_mbs: width, height_map_units: 1, ..Sps::default() };
        let pps = Pps { slice_groups: Some((5, 1, 31)), ..Pps::default() };
        let mut c = ctx(&sps, &pps);
        let mut w = BitWriter::new();
        w.ue(0);
        w.ue(7);
        w.ue(0);
        w.u(4, 3);
        w.u(6, 9);
        w.se(0);
        w.u(bits, 1);
        assert_slice(&mut c, slice(0x01, w, &[0xff]));
    }
}

#[test]
fn field_b_slice_poc_type_1_modifications_weights_and_every_mmco() {
    let sps = Sps { poc_type: 1, frame_mbs_only: false, ..Sps::default() };
    let pps = Pps {
        cabac: true,
        bottom_field_pic_order: true,
        weighted_bipred_idc: 1,
        deblocking: true,
        redundant: true,
        l0: 1,
        l1: 0,
        ..Pps::default()
    };
    let mut c = ctx(&sps, &pps);
    for field in [true, false] {
        let mut w = BitWriter::new();
        w.ue(3);
        w.ue(1); // B
        w.ue(0);
        w.u(4, 7); // frame_num
        w.flag(field); // field_pic_flag
        if field {
            w.flag(true); // bottom_field_flag
        }
        w.se(-3); // delta_pic_order_cnt[0]
        if !field {
            w.se(2); // delta_pic_order_cnt[1]: bottom_field_pic_order_in_frame_present, frame
        }
        w.ue(1); // redundant_pic_cnt
        w.flag(true); // direct_spatial_mv_pred_flag
        w.flag(true); // num_ref_idx_active_override_flag
        w.ue(3); // l0
        w.ue(2); // l1
                 // l0 modifications: idc 0, 1, 2 then 3
        w.flag(true);
        for (idc, v) in [(0, 4), (1, 0), (2, 9)] {
            w.ue(idc);
            w.ue(v);
        }
        w.ue(3);
        w.flag(true); // l1: an immediate end
        w.ue(3);
        // pred_weight_table, ChromaArrayType 1
        w.ue(5);
        w.ue(3);
        for (refs, pattern) in [(4, [true, false, false, true]), (3, [false, true, false, false])] {
            for &on in pattern.iter().take(refs) {
                w.flag(on); // luma_weight_flag
                if on {
                    w.se(-7);
                    w.se(12);
                }
                w.flag(!on); // chroma_weight_flag
                if !on {
                    for _ in 0..2 {
                        w.se(1);
                        w.se(-1);
                    }
                }
            }
        }
        // dec_ref_pic_marking (nal_ref_idc 1, not IDR): every operation, then 0
        w.flag(true);
        for (mmco, args) in [(1, 1), (2, 1), (3, 2), (4, 1), (5, 0), (6, 1)] {
            w.ue(mmco);
            // Distinct argument values, so that a misread argument count desynchronises.
            for a in 0..args {
                w.ue(a * 37 + 5);
            }
        }
        w.ue(0);
        w.ue(2); // cabac_init_idc
        w.se(7); // slice_qp_delta
        w.ue(0); // disable_deblocking_filter_idc
        w.se(-2);
        w.se(3);
        assert_slice(&mut c, slice(0x21, w, &[0xff]));
    }
}

#[test]
fn sp_and_si_slices() {
    let pps = Pps { deblocking: true, ..Pps::default() };
    let mut c = ctx(&Sps::default(), &pps);
    for slice_type in [3, 4, 8, 9] {
        let mut w = BitWriter::new();
        w.ue(0);
        w.ue(slice_type);
        w.ue(0);
        w.u(4, 1);
        w.u(6, 2);
        if slice_type % 5 == 3 {
            w.flag(false); // num_ref_idx_active_override_flag
            w.flag(false); // ref_pic_list_modification_flag_l0
        }
        // nal_ref_idc 0: no dec_ref_pic_marking
        w.se(1); // slice_qp_delta
        if slice_type % 5 == 3 {
            w.flag(true); // sp_for_switch_flag
        }
        w.se(-5); // slice_qs_delta
        w.ue(1); // disable_deblocking_filter_idc 1: no offsets
        assert_slice(&mut c, slice(0x01, w, &[]));
    }
}

#[test]
fn separate_colour_planes_scaling_lists_and_idr() {
    let sps = Sps { profile: 244, chroma_format_idc: 3, separate_colour_plane: true, scaling: true, ..Sps::default() };
    let pps = Pps { weighted_pred: true, l0: 2, ..Pps::default() };
    let mut c = ctx(&sps, &pps);
    // IDR I slice: colour_plane_id, idr_pic_id, the two IDR marking flags.
    let mut w = BitWriter::new();
    w.ue(0);
    w.ue(7);
    w.ue(0);
    w.u(2, 2); // colour_plane_id
    w.u(4, 0);
    w.ue(300); // idr_pic_id
    w.u(6, 0);
    w.flag(false);
    w.flag(true);
    w.se(0);
    assert_slice(&mut c, slice(0x65, w, &[]));
    // P slice with weights: ChromaArrayType 0 means no chroma denominator or chroma flags.
    let mut w = BitWriter::new();
    w.ue(0);
    w.ue(0);
    w.ue(0);
    w.u(2, 0);
    w.u(4, 1);
    w.u(6, 2);
    w.flag(false);
    w.flag(false);
    w.ue(2); // luma_log2_weight_denom
    for on in [true, false, true] {
        w.flag(on);
        if on {
            w.se(3);
            w.se(-3);
        }
    }
    w.flag(false);
    w.se(0);
    assert_slice(&mut c, slice(0x41, w, &[]));
}

#[test]
fn slice_group_map_types_in_the_pps() {
    for map_type in [0, 2, 6] {
        let pps = Pps { slice_groups: Some((map_type, 2, 0)), ..Pps::default() };
        let mut c = ctx(&Sps::default(), &pps);
        let mut w = BitWriter::new();
        w.ue(0);
        w.ue(7);
        w.ue(0);
        w.u(4, 0);
        w.u(6, 0);
        w.se(0);
        assert_slice(&mut c, slice(0x01, w, &[]));
    }
}

#[test]
fn in_band_parameter_sets_replace_the_record() {
    let mut c = ctx(&Sps::default(), &Pps::default());
    // New SPS 0 with a 12-bit frame_num and PPS 3 using it, then a slice of PPS 3.
    let sps = sps_nal(&Sps { frame_num_bits: 12, poc_type: 2, ..Sps::default() }, 0);
    let pps = pps_nal(&Pps::default(), 3, 0);
    let mut w = BitWriter::new();
    w.ue(0);
    w.ue(7);
    w.ue(3);
    w.u(12, 5);
    w.se(0);
    let Slice { nal, clear, .. } = slice(0x01, w, &[]);
    let sei = [0x06, 0x05, 0x01, 0xaa, 0x80];
    let s = sample(&[&sei, &sps, &pps, &nal]);
    let map = c.subsamples(&s, Scheme::Cbcs).unwrap();
    let leading = 4 + sei.len() + 4 + sps.len() + 4 + pps.len() + 4 + clear;
    assert_eq!(map, vec![Subsample { clear: leading as u16, protected: (nal.len() - clear) as u32 }]);
}

#[test]
fn partitions_and_non_vcl_units_are_clear() {
    let mut c = ctx(&Sps::default(), &Pps::default());
    let units: Vec<Vec<u8>> = [0x02u8, 0x03, 0x04, 0x06, 0x09, 0x0c, 0x14, 0x0e]
        .iter()
        .map(|&t| {
            let mut n = vec![0x60 | t];
            n.extend([0x11; 40]);
            n
        })
        .collect();
    let refs: Vec<&[u8]> = units.iter().map(Vec::as_slice).collect();
    let s = sample(&refs);
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let map = c.subsamples(&s, scheme).unwrap();
        assert_eq!(map, vec![Subsample { clear: s.len() as u16, protected: 0 }]);
    }
}

#[test]
fn malformed_slice_headers_are_errors() {
    let mut c = ctx(&Sps::default(), &Pps { deblocking: true, ..Pps::default() });
    let header = |f: &dyn Fn(&mut BitWriter)| {
        let mut w = BitWriter::new();
        f(&mut w);
        sample(&[&slice(0x41, w, &[]).nal])
    };
    // Unknown PPS.
    let s = header(&|w| {
        w.ue(0);
        w.ue(5);
        w.ue(9);
    });
    assert!(c.subsamples(&s, Scheme::Cbcs).is_err());
    // slice_type 10.
    let s = header(&|w| {
        w.ue(0);
        w.ue(10);
    });
    assert!(c.subsamples(&s, Scheme::Cbcs).is_err());
    // modification_of_pic_nums_idc never 3: more operations than references.
    let s = header(&|w| {
        w.ue(0);
        w.ue(5);
        w.ue(0);
        w.u(4, 0);
        w.u(6, 0);
        w.flag(false);
        w.flag(true);
        for _ in 0..40 {
            w.ue(0);
            w.ue(1);
        }
    });
    assert!(c.subsamples(&s, Scheme::Cbcs).is_err());
    // memory_management_control_operation 7.
    let s = header(&|w| {
        w.ue(0);
        w.ue(5);
        w.ue(0);
        w.u(4, 0);
        w.u(6, 0);
        w.flag(false);
        w.flag(false);
        w.flag(true);
        w.ue(7);
    });
    assert!(c.subsamples(&s, Scheme::Cbcs).is_err());
    // Truncated: the NAL unit ends inside the header.
    let s = sample(&[&[0x41, 0x9a]]);
    assert!(c.subsamples(&s, Scheme::Cbcs).is_err());
    // The context survives errors.
    let mut w = BitWriter::new();
    w.ue(0);
    w.ue(7);
    w.ue(0);
    w.u(4, 0);
    w.u(6, 0);
    w.se(0);
    w.ue(1);
    assert_slice(&mut c, slice(0x01, w, &[]));
}

#[test]
fn malformed_records_are_errors() {
    let good = avcc(&[sps_nal(&Sps::default(), 0)], &[pps_nal(&Pps::default(), 0, 0)]);
    assert!(NalContext::from_avcc(&good).is_ok());
    let mut v0 = good.clone();
    v0[0] = 0;
    assert!(NalContext::from_avcc(&v0).is_err());
    let mut len3 = good.clone();
    len3[4] = 0xfe;
    assert!(NalContext::from_avcc(&len3).is_err());
    for n in 0..good.len() {
        // Every truncation fails or (past the last PPS) still parses; none panics.
        let _ = NalContext::from_avcc(&good[..n]);
    }
    assert!(NalContext::from_avcc(&good[..good.len() - 1]).is_err());
    // SPS id 32 is out of range.
    let bad = avcc(&[sps_nal(&Sps::default(), 32)], &[]);
    assert!(NalContext::from_avcc(&bad).is_err());
}

#[test]
fn length_sizes_one_and_two() {
    for (marker, size) in [(0xfc, 1usize), (0xfd, 2)] {
        let mut rec = avcc(&[sps_nal(&Sps::default(), 0)], &[pps_nal(&Pps::default(), 0, 0)]);
        rec[4] = marker;
        let mut c = NalContext::from_avcc(&rec).unwrap();
        let mut w = BitWriter::new();
        w.ue(0);
        w.ue(7);
        w.ue(0);
        w.u(4, 0);
        w.u(6, 0);
        w.se(0);
        let Slice { nal, clear, .. } = slice(0x01, w, &[]);
        let mut s = (nal.len() as u32).to_be_bytes()[4 - size..].to_vec();
        s.extend(&nal);
        let map = c.subsamples(&s, Scheme::Cbcs).unwrap();
        assert_eq!(map, vec![Subsample { clear: (size + clear) as u16, protected: (nal.len() - clear) as u32 }]);
    }
}
