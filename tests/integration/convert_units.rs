//! `mmrun convert` between datetime64 units, timedelta64 units and
//! fixed-size strings, against live NumPy: for every pair of a set of
//! units and lengths and every `--casting` rule, mmrun allows exactly what
//! `np.can_cast` allows (a refusal says which rule would allow it) and
//! writes `a.astype(b)`'s bytes; the pairs NumPy allows that mmrun does
//! not convert are refused by name, nothing written; data NumPy's `astype`
//! raises on fails the run.

use crate::util::{assert_refused, python, require_numpy, stderr, Dir};

const CASTINGS: [&str; 5] = ["no", "equiv", "safe", "same_kind", "unsafe"];

/// Whether mmrun refuses `a` → `b` as a cast it does not do (NumPy
/// allows it under `unsafe` only, or its `astype` fails on it).
fn not_done(a: &str, b: &str) -> bool {
    let unit = |t: &str| {
        t.split('[')
            .nth(1)
            .map(|u| u.trim_end_matches(']').to_string())
    };
    let (ua, ub) = (unit(a), unit(b));
    let calendar = |u: &Option<String>| matches!(u.as_deref(), Some("Y" | "M"));
    if a != b && ub.is_none() && (b.starts_with("M8") || b.starts_with("m8")) {
        return true;
    }
    a.starts_with("m8") && ua.is_some() && calendar(&ua) != calendar(&ub)
}

#[test]
fn datetime_timedelta_and_string_casts_follow_numpy() {
    let Some(py) = require_numpy("convert_units") else {
        return;
    };
    let d = Dir::new();
    let datetimes = [
        "M8[Y]", "M8[M]", "M8[W]", "M8[D]", "M8[h]", "M8[s]", "M8[ms]", "M8[10ms]", "M8[7ms]",
        "M8[us]", "M8[ns]", "M8",
    ];
    let timedeltas = [
        "m8[Y]", "m8[M]", "m8[D]", "m8[s]", "m8[7ms]", "m8[ns]", "m8",
    ];
    let strings = ["S1", "S5", "S10", "U1", "U5", "U10", ">U5"];
    // Inputs: dates between 1850 and 2090 (so every unit down to ns holds
    // them) with values either side of zero and NaT; ASCII strings with
    // NULs inside; generic units hold NaT only.
    python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             rng = np.random.default_rng(7)\n\
             base = rng.integers(-3_700_000_000, 3_700_000_000, 40).astype('M8[s]')\n\
             base = base + rng.integers(0, 10**9, 40).astype('m8[ns]')\n\
             for t in {datetimes:?} + {timedeltas:?}:\n\
             \x20   if '[' not in t:\n\
             \x20       v = np.array(['NaT'] * 6, t)\n\
             \x20   elif t.startswith('M8'):\n\
             \x20       v = np.concatenate([base.astype(t), np.array([-1, 0, 1, -13, 13], 'i8').astype(t), np.array(['NaT'], t)])\n\
             \x20   else:\n\
             \x20       v = np.concatenate([(base - np.datetime64(0, 's')).astype(t), np.array([-1, 0, 1, -13, 13], 'i8').astype(t), np.array(['NaT'], t)])\n\
             \x20   np.save('x_' + t.replace('[', '_').replace(']', '') + '.npy', v.reshape(-1, 2) if len(v) % 2 == 0 else v)\n\
             words = np.array(['a', 'hello', 'ab\\x00c', '', 'Z' * 10, 'xyz  ', '0123456789', 'q'])\n\
             for t in {strings:?}:\n\
             \x20   v = words.astype(t.lstrip('>') if t[0] == 'S' else t)\n\
             \x20   np.save('x_' + t.replace('>', 'be') + '.npy', v.reshape(4, 2))\n"
        ),
    );
    let verdicts = python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             groups = [{datetimes:?}, {timedeltas:?}, {strings:?}]\n\
             for g in groups:\n\
             \x20   for a in g:\n\
             \x20       for b in g:\n\
             \x20           if b.startswith('>'): continue\n\
             \x20           print(a, b, ' '.join(str(int(np.can_cast(np.dtype(a), b, c))) for c in {CASTINGS:?}))\n"
        ),
    );
    let file = |t: &str| {
        format!(
            "x_{}.npy",
            t.replace('[', "_").replace(']', "").replace('>', "be")
        )
    };
    let mut written = Vec::new();
    let mut refused = 0;
    for line in verdicts.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (a, b) = (f[0], f[1]);
        let input = file(a);
        let before = d.snapshot();
        if not_done(a, b) {
            let out = d.run(&[
                "convert",
                &input,
                "o.npy",
                "--dtype",
                b,
                "--casting",
                "unsafe",
            ]);
            assert_refused(&out, 2, b);
            assert_eq!(d.snapshot(), before, "{a} -> {b}");
            continue;
        }
        let allowed: Vec<bool> = f[2..].iter().map(|v| *v == "1").collect();
        let loosest = CASTINGS[allowed.iter().position(|&x| x).unwrap()];
        for (c, ok) in CASTINGS.iter().zip(&allowed) {
            let out_name = format!(
                "o_{}_{}_{c}.npy",
                file(a).trim_end_matches(".npy"),
                file(b).trim_end_matches(".npy")
            );
            let args = ["convert", &input, &out_name, "--dtype", b, "--casting", c];
            let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
            let out = d.run(if *c == "unsafe" { &args[..] } else { &dry[..] });
            if *ok {
                assert!(out.status.success(), "{a} -> {b} {c}: {}", stderr(&out));
                if *c == "unsafe" {
                    written.push(format!("({a:?}, {b:?}, {out_name:?})"));
                }
            } else {
                assert_refused(&out, 2, "is False");
                let e = stderr(&out);
                assert!(
                    e.contains(&format!("--casting {loosest} allows it")),
                    "{a} -> {b} {c}: {e}"
                );
                assert!(!d.join(&out_name).exists());
                refused += 1;
            }
        }
    }
    assert!(written.len() > 150, "{}", written.len());
    assert!(refused > 300, "{refused}");
    // The bytes of a.astype(b), in NumPy's native byte order.
    let got = python(
        &py,
        d.path(),
        &format!(
            "import numpy as np\n\
             def name(t): return 'x_' + t.replace('[', '_').replace(']', '').replace('>', 'be') + '.npy'\n\
             for a, b, o in [{}]:\n\
             \x20   got = np.load(o)\n\
             \x20   want = np.load(name(a)).astype(b)\n\
             \x20   assert got.dtype == want.dtype, (a, b, got.dtype, want.dtype)\n\
             \x20   assert got.tobytes() == want.tobytes(), (a, b, got, want)\n\
             print('ok')\n",
            written.join(", ")
        ),
    );
    assert!(got.trim_end().ends_with("ok"), "{got}");
}

/// What NumPy's `astype` raises on fails the run, nothing published:
/// non-ASCII bytes to `U`, non-ASCII text to `S`, a generic datetime
/// other than NaT to years; to seconds its count is copied, as NumPy does.
#[test]
fn values_numpy_cannot_cast_fail_the_run() {
    let Some(py) = require_numpy("convert_units") else {
        return;
    };
    let d = Dir::new();
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         np.save('s.npy', np.array([b'ok', b'\\xffx'], 'S2'))\n\
         np.save('u.npy', np.array(['ok', '\\xe9'], 'U2'))\n\
         np.save('g.npy', np.frombuffer(np.array([-(2**63), 5]).tobytes(), 'M8'))\n\
         import warnings\n\
         for f, t in [('s.npy', 'U2'), ('u.npy', 'S2'), ('g.npy', 'M8[Y]')]:\n\
         \x20   try:\n\
         \x20       np.load(f).astype(t)\n\
         \x20       raise SystemExit(f + ' converted')\n\
         \x20   except (UnicodeError, ValueError):\n\
         \x20       pass\n",
    );
    for (f, t, why) in [
        ("s.npy", "U2", "UnicodeDecodeError"),
        ("u.npy", "S2", "UnicodeEncodeError"),
        ("g.npy", "M8[Y]", "other than NaT"),
    ] {
        let o = format!("o_{f}");
        let out = d.run(&["convert", f, &o, "--dtype", t, "--casting", "unsafe"]);
        assert_eq!(out.status.code(), Some(1), "{f} {t}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{f}: {}", stderr(&out));
        assert!(!d.join(&o).exists());
    }
    // To a linear unit, a generic datetime's counts are copied, as NumPy.
    d.ok(&["convert", "g.npy", "gs.npy", "--dtype", "M8[s]"]);
    python(
        &py,
        d.path(),
        "import numpy as np\n\
         assert np.load('gs.npy').tobytes() == np.load('g.npy').astype('M8[s]').tobytes()\n",
    );
}
