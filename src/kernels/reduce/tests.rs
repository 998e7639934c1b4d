//! Unit tests of the reduce kernel: the dyadic tree gives the same bytes
//! for any split of the rows, and values agree with plain definitions.

use super::*;

fn params(op: Op, axis: Axis, dtype: DType, shape: &[u64]) -> ReduceParams {
    ReduceParams {
        op,
        axis,
        ddof: 0,
        dtype,
        shape: shape.to_vec(),
        out_dtype: op.result_dtype(dtype),
        cols: None,
        pairs: false,
    }
}

/// Scans `data` split into the given worker ranges (each in blocks of
/// `block` rows), as separate kernels would, and combines in a forest.
fn tree_result(p: &ReduceParams, data: &[f64], ranges: &[(u64, u64)], block: u64) -> Vec<u8> {
    let row_len: u64 = p.shape.iter().skip(1).product();
    let mut forest = Forest::new(p);
    for &(a, b) in ranges {
        let k = Reduce::new(p.clone()).unwrap();
        let mut r = a;
        while r < b {
            let n = block.min(b - r);
            let bytes: &[u8] =
                bytemuck::cast_slice(&data[(r * row_len) as usize..((r + n) * row_len) as usize]);
            let input = RowsIn {
                bytes,
                dtype: DType::F64,
                first_row: r,
                row_len,
            };
            k.scan(input, n).unwrap();
            r += n;
        }
        forest
            .insert_encoded(&k.take_result().unwrap().unwrap())
            .unwrap();
    }
    forest.finish().unwrap().0
}

fn noisy(n: usize) -> Vec<f64> {
    // Values of very different magnitudes, so the summation order shows.
    (0..n)
        .map(|i| {
            let x =
                ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            (x - 0.5) * 10f64.powi((i % 17) as i32 - 8)
        })
        .collect()
}

#[test]
fn any_split_gives_identical_bytes() {
    for (axis, shape) in [
        (Axis::All, vec![37u64, 5]),
        (Axis::Zero, vec![37, 5]),
        (Axis::All, vec![100]),
        (Axis::Zero, vec![64, 3]),
        (Axis::ZeroInner { axis: 2, extra: 0 }, vec![37, 3, 4]),
        (Axis::ZeroInner { axis: 1, extra: 1 }, vec![21, 3, 4]),
    ] {
        for op in [Op::Sum, Op::Mean, Op::Var, Op::Min] {
            let p = params(op, axis, DType::F64, &shape);
            let data = noisy(shape.iter().product::<u64>() as usize);
            let rows = shape[0];
            let one = tree_result(&p, &data, &[(0, rows)], 1000);
            for splits in [
                vec![(0, 1), (1, rows)],
                vec![(0, rows / 3), (rows / 3, rows / 2), (rows / 2, rows)],
                (0..rows).map(|r| (r, r + 1)).collect::<Vec<_>>(),
                vec![(rows / 2, rows), (0, rows / 2)],
            ] {
                for block in [1, 3, 1000] {
                    assert_eq!(
                        tree_result(&p, &data, &splits, block),
                        one,
                        "{op:?} {axis:?} {shape:?} {splits:?} block {block}"
                    );
                }
            }
        }
    }
}

#[test]
fn values_match_plain_definitions() {
    let data = noisy(60);
    let p = params(Op::Var, Axis::All, DType::F64, &[12, 5]);
    let out = tree_result(&p, &data, &[(0, 5), (5, 12)], 2);
    let got = f64::from_le_bytes(out.try_into().unwrap());
    let mean = data.iter().sum::<f64>() / 60.0;
    let var = data.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 60.0;
    assert!((got - var).abs() <= 1e-12 * var.abs(), "{got} vs {var}");

    let p = params(Op::Sum, Axis::Zero, DType::F64, &[12, 5]);
    let out = tree_result(&p, &data, &[(0, 7), (7, 12)], 4);
    let got: Vec<f64> = out
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    for (j, g) in got.iter().enumerate() {
        let want: f64 = (0..12).map(|i| data[i * 5 + j]).sum();
        assert!(
            (g - want).abs() <= 1e-12 * want.abs().max(1e-300),
            "{g} vs {want}"
        );
    }
}

#[test]
fn nan_propagates_through_min_and_max() {
    let mut data = noisy(20);
    data[13] = f64::NAN;
    for op in [Op::Min, Op::Max, Op::Sum] {
        let p = params(op, Axis::All, DType::F64, &[20]);
        let out = tree_result(&p, &data, &[(0, 10), (10, 20)], 3);
        assert!(
            f64::from_le_bytes(out.try_into().unwrap()).is_nan(),
            "{op:?}"
        );
    }
}

#[test]
fn missing_and_duplicate_rows_are_errors() {
    let p = params(Op::Sum, Axis::All, DType::F64, &[8]);
    let data = noisy(8);
    let k = Reduce::new(p.clone()).unwrap();
    let input = RowsIn {
        bytes: bytemuck::cast_slice(&data[..3]),
        dtype: DType::F64,
        first_row: 0,
        row_len: 1,
    };
    k.scan(input, 3).unwrap();
    let part = k.take_result().unwrap().unwrap();
    let mut f = Forest::new(&p);
    f.insert_encoded(&part).unwrap();
    assert!(f.insert_encoded(&part).is_err(), "duplicate rows accepted");
    let err = Forest::new(&p);
    let mut err = err;
    err.insert_encoded(&part).unwrap();
    let e = err.finish().unwrap_err();
    assert!(e.to_string().contains("row 3"), "{e}");
}

#[test]
fn records_round_trip_exactly() {
    let node = Node {
        start: 8,
        level: 3,
        states: States::V(vec![[0.1, f64::NAN], [-0.0, 1e300]]),
    };
    let back = Node::from_record(&node.record()).unwrap();
    assert_eq!(back.states.bytes(), node.states.bytes());
    let node = Node {
        start: 0,
        level: 0,
        states: States::I(vec![i128::MIN, 5]),
    };
    assert_eq!(Node::from_record(&node.record()).unwrap(), node);
}

#[test]
fn result_dtypes_are_numpys() {
    use DType::*;
    assert_eq!(Op::Sum.result_dtype(U8), U64);
    assert_eq!(Op::Sum.result_dtype(Bool), I64);
    assert_eq!(Op::Sum.result_dtype(I32), I64);
    assert_eq!(Op::Sum.result_dtype(F16), F16);
    assert_eq!(Op::Mean.result_dtype(I8), F64);
    assert_eq!(Op::Var.result_dtype(F32), F32);
    assert_eq!(Op::Max.result_dtype(U16), U16);
}

#[test]
fn axes_parse_as_numpy_takes_them() {
    assert_eq!(
        Axis::parse("-1", 2).unwrap(),
        Axis::Inner { axis: 1, extra: 0 }
    );
    assert_eq!(Axis::parse("0", 3).unwrap(), Axis::Zero);
    assert_eq!(Axis::parse("-3", 3).unwrap(), Axis::Zero);
    assert!(Axis::parse("2", 2)
        .unwrap_err()
        .to_string()
        .contains("out of bounds for array of dimension 2"));
    assert!(Axis::parse("x", 2).is_err());
    assert_eq!(
        Axis::Inner { axis: 1, extra: 0 }.out_shape(&[4, 5, 6]),
        vec![4, 6]
    );
    assert_eq!(Axis::Zero.out_shape(&[4, 5, 6]), vec![5, 6]);
    // Tuples, as NumPy's axis=(…).
    assert_eq!(
        Axis::parse("1,2", 4).unwrap(),
        Axis::Inner { axis: 1, extra: 1 }
    );
    assert_eq!(Axis::parse("(-1, -2)", 3).unwrap(), Axis::Rows);
    assert_eq!(Axis::parse("0,1", 2).unwrap(), Axis::All);
    assert_eq!(Axis::parse("(0,)", 3).unwrap(), Axis::Zero);
    assert_eq!(
        Axis::Inner { axis: 1, extra: 1 }.out_shape(&[4, 5, 6, 7]),
        vec![4, 7]
    );
    assert!(Axis::parse("1,1", 3).is_err());
    // Axis 0 with one run of axes after it (refused before).
    assert_eq!(
        Axis::parse("0,2", 3).unwrap(),
        Axis::ZeroInner { axis: 2, extra: 0 }
    );
    assert_eq!(
        Axis::parse("(2, 0, 3)", 5).unwrap(),
        Axis::ZeroInner { axis: 2, extra: 1 }
    );
    assert_eq!(
        Axis::ZeroInner { axis: 2, extra: 0 }.out_shape(&[4, 5, 6, 7]),
        vec![5, 7]
    );
    assert!(Axis::parse("0,1,3", 4).is_err());
    assert!(Axis::parse("1,3", 4).is_err());
    assert!(Axis::parse("1,5", 4).is_err());
}

#[test]
fn integer_results_that_do_not_fit_are_errors_floats_overflow_to_inf() {
    let mut buf = [0u8; 4];
    assert!(store(Value::I(1 << 40), DType::I32, &mut buf, 0).is_err());
    // Floats overflow to inf, as NumPy's do; the stored value is returned.
    assert_eq!(
        store(Value::F(1e39), DType::F32, &mut buf, 0),
        Ok(Value::F(f64::INFINITY))
    );
    assert_eq!(f32::from_le_bytes(buf), f32::INFINITY);
    assert!(store(Value::F(f64::INFINITY), DType::F32, &mut buf, 0).is_ok());
    assert!(store(Value::F(f64::NAN), DType::I32, &mut buf, 0).is_err());
    store(Value::I(-7), DType::I32, &mut buf, 0).unwrap();
    assert_eq!(i32::from_le_bytes(buf), -7);
}

/// Data with NaNs (an all-NaN column and row) and repeated values, so ties
/// and NaN handling show in argmin/argmax and the nan* moments.
fn with_nans_and_ties(rows: usize, cols: usize) -> Vec<f64> {
    let mut d = noisy(rows * cols);
    for (i, v) in d.iter_mut().enumerate() {
        if i % 7 == 3 || i % cols == 1 || i / cols == 4 {
            *v = f64::NAN;
        } else if i % 5 == 0 {
            *v = 0.25;
        }
    }
    d
}

#[test]
fn arg_and_nan_moments_give_identical_bytes_for_any_split() {
    for (axis, shape) in [
        (Axis::All, vec![37u64, 5]),
        (Axis::Zero, vec![37, 5]),
        (Axis::All, vec![100]),
    ] {
        for op in [Op::ArgMin, Op::ArgMax, Op::NanMean, Op::NanVar, Op::NanStd] {
            let p = params(op, axis, DType::F64, &shape);
            let data = with_nans_and_ties(
                shape[0] as usize,
                shape.get(1).copied().unwrap_or(1) as usize,
            );
            let rows = shape[0];
            let one = tree_result(&p, &data, &[(0, rows)], 1000);
            for splits in [
                vec![(0, 1), (1, rows)],
                vec![(0, rows / 3), (rows / 3, rows / 2), (rows / 2, rows)],
                (0..rows).map(|r| (r, r + 1)).collect::<Vec<_>>(),
                vec![(rows / 2, rows), (0, rows / 2)],
            ] {
                for block in [1, 3, 1000] {
                    assert_eq!(
                        tree_result(&p, &data, &splits, block),
                        one,
                        "{op:?} {axis:?} {shape:?} {splits:?} block {block}"
                    );
                }
            }
        }
    }
}

#[test]
fn argmin_argmax_take_the_first_tie_and_the_first_nan() {
    let idx = |op: Op, data: &[f64]| {
        let p = params(op, Axis::All, DType::F64, &[data.len() as u64]);
        let n = data.len() as u64;
        let out = tree_result(&p, data, &[(0, n / 2), (n / 2, n)], 1);
        i64::from_le_bytes(out.try_into().unwrap())
    };
    let ties = [1.0, 3.0, -2.0, 3.0, -2.0, 0.0, -0.0];
    assert_eq!(idx(Op::ArgMax, &ties), 1);
    assert_eq!(idx(Op::ArgMin, &ties), 2);
    let nans = [1.0, 3.0, f64::NAN, -9.0, f64::NAN];
    assert_eq!(idx(Op::ArgMax, &nans), 2);
    assert_eq!(idx(Op::ArgMin, &nans), 2);
    // -0.0 and 0.0 are equal, as NumPy compares them: the first wins.
    assert_eq!(idx(Op::ArgMin, &[0.5, -0.0, 0.0]), 1);
    assert_eq!(idx(Op::ArgMax, &[-1.0, 0.0, -0.0]), 1);
}

#[test]
fn nan_moments_ignore_nan_and_an_all_nan_slice_is_nan() {
    let data = [1.0, f64::NAN, 3.0, f64::NAN];
    let get = |op: Op, d: &[f64]| {
        let p = params(op, Axis::All, DType::F64, &[d.len() as u64]);
        let out = tree_result(&p, d, &[(0, 1), (1, d.len() as u64)], 1);
        f64::from_le_bytes(out.try_into().unwrap())
    };
    assert_eq!(get(Op::NanMean, &data), 2.0);
    assert_eq!(get(Op::NanVar, &data), 1.0);
    assert_eq!(get(Op::NanStd, &data), 1.0);
    for op in [Op::NanMean, Op::NanVar, Op::NanStd] {
        assert!(get(op, &[f64::NAN; 3]).is_nan(), "{op:?}");
    }
    assert_eq!(Op::ArgMax.result_dtype(DType::F32), DType::I64);
    assert_eq!(Op::NanVar.result_dtype(DType::I16), DType::F64);
    assert_eq!(Op::NanMean.result_dtype(DType::F16), DType::F16);
}

/// Reads `data` (rows of `p.shape`) with each row in parts of `part`
/// elements ([`Kernel::read_part`]), or whole when `part` is 0: the
/// per-row outputs, or the forest's result across rows.
fn by_parts(p: &ReduceParams, data: &[f64], part: u64) -> Vec<u8> {
    let row_len: u64 = p.shape.iter().skip(1).product();
    let rows = p.shape[0];
    let k = Reduce::new(p.clone()).unwrap();
    let out_row: u64 = if p.axis.across_rows() {
        0
    } else {
        p.axis.out_shape(&p.shape).iter().skip(1).product()
    };
    let ob = (out_row * p.out_dtype.itemsize()) as usize;
    let mut out = vec![0u8; ob * rows as usize];
    for r in 0..rows {
        let row = &data[(r * row_len) as usize..((r + 1) * row_len) as usize];
        let o = &mut out[ob * r as usize..ob * (r + 1) as usize];
        let mut o = Some(AnyRowsMut::from_bytes(p.out_dtype, o, r, out_row));
        let step = if part == 0 { row_len.max(1) } else { part };
        let mut from = 0;
        loop {
            let m = step.min(row_len - from);
            let input = RowsIn {
                bytes: bytemuck::cast_slice(&row[from as usize..(from + m) as usize]),
                dtype: DType::F64,
                first_row: r,
                row_len,
            };
            let last = from + m == row_len;
            if part == 0 && p.axis.across_rows() {
                k.scan(input, 1).unwrap();
            } else if part == 0 {
                k.run_io(input, o.take().unwrap()).unwrap();
            } else {
                k.read_part(input, from, last, if last { o.take() } else { None })
                    .unwrap();
            }
            from += m;
            if last {
                break;
            }
        }
    }
    if !p.axis.across_rows() {
        return out;
    }
    let mut forest = Forest::new(p);
    forest
        .insert_encoded(&k.take_result().unwrap().unwrap())
        .unwrap();
    forest.finish().unwrap().0
}

/// Rows longer than [`PIECE`] reduce piece by piece: read whole or in any
/// parts that end at multiples of `PIECE`, every op on every axis form
/// that reads rows in parts gives the same bytes.
#[test]
fn rows_read_in_parts_give_the_bytes_of_whole_rows() {
    let n = PIECE * 2 + 777;
    for (axis, shape) in [
        (Axis::Rows, vec![3u64, n]),
        (Axis::All, vec![3, n]),
        (Axis::Zero, vec![3, n]),
        (Axis::Zero, vec![2, 3, n / 3]),
        (Axis::Inner { axis: 1, extra: 0 }, vec![2, 3, n / 3]),
        (Axis::Inner { axis: 2, extra: 0 }, vec![2, 3, 5, n / 15]),
        (Axis::ZeroInner { axis: 1, extra: 0 }, vec![2, 3, n / 3]),
        (Axis::Inner { axis: 2, extra: 0 }, vec![2, 3, n / 3]),
        (Axis::Inner { axis: 1, extra: 1 }, vec![2, 3, n / 3]),
        (Axis::ZeroInner { axis: 2, extra: 0 }, vec![2, 3, n / 3]),
    ] {
        let ops = [
            Op::Sum,
            Op::Mean,
            Op::Var,
            Op::Min,
            Op::Prod,
            Op::NanMean,
            Op::NanVar,
            Op::Any,
            Op::ArgMax,
        ];
        for op in ops {
            if op.is_arg() && matches!(axis, Axis::ZeroInner { .. } | Axis::Inner { extra: 1, .. })
            {
                continue;
            }
            let p = params(op, axis, DType::F64, &shape);
            let len = shape.iter().product::<u64>() as usize;
            let mut data = if matches!(op, Op::NanMean | Op::NanVar) {
                with_nans_and_ties(1, len)
            } else {
                noisy(len)
            };
            // A tie for the maximum in the last piece: argmax takes the first.
            data[len - 5] = 1e9;
            data[len - 4] = 1e9;
            let whole = by_parts(&p, &data, 0);
            for part in [PIECE, 2 * PIECE, 3 * PIECE] {
                assert_eq!(
                    by_parts(&p, &data, part),
                    whole,
                    "{op:?} {axis:?} {shape:?} in parts of {part}"
                );
            }
        }
    }
}
