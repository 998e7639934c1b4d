//! `mmrun convert`: a new file holding `IN.astype(T)`, native little-endian
//! and C order, as a library call. [`ConvertInput`] describes IN (any
//! `.npy` mmrun reads — big-endian and Fortran order included — or a raw
//! file as `numpy.memmap` reads it); [`ConvertInput::open`] reads that
//! layout under the read discipline; [`Conversion::new`] checks the output
//! and the casting rule before anything is created. Workers read IN
//! through their own mapping of it ([`Runner::input_layout`]); under
//! `--distributed` ([`OutputOptions::rank`]) a rank writes its part of an
//! OUT made by `create --pending`.
//!
//! ```
//! use mmrun::commands::convert::{Conversion, ConvertInput};
//! use mmrun::kernels::convert::Casting;
//! use mmrun::{DType, Fill, FillKind, Kernel, Runner, Target};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("x.npy");
//! Runner::new(Target::new_npy(&path, DType::F64, vec![10, 4]))
//!     .run(|l| Ok(Some(Box::new(Fill::new(FillKind::Arange, l.dtype)?) as Box<dyn Kernel>)))?;
//!
//! // `mmrun convert x.npy x32.npy --dtype f4 --casting same_kind`
//! let input = ConvertInput::default().open(&path)?;
//! let out = dir.path().join("x32.npy");
//! let job = Conversion::new(input, &out, Some(DType::F32), Casting::SameKind, false)?;
//! let runner = Runner::new(job.target());
//! let summary = job.run(runner)?;
//! assert_eq!(summary.layout.dtype, DType::F32);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::coordinator::read::Reading;
use crate::coordinator::{RunSummary, Runner, Target};
use crate::error::{Error, Result};
use crate::kernels::convert::{Casting, Convert, ConvertParams};
use crate::kernels::Kernel;
use crate::layout::{npy, ByteOrder, DType, HeaderStyle, Layout, RawSpec};

/// How IN is described: a `.npy` (the default), or a headerless file read
/// as `numpy.memmap(IN, dtype, shape, offset, order)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvertInput {
    /// IN is headerless (`--in-raw`); the other fields need it.
    pub raw: bool,
    /// A raw IN's dtype, NumPy spelling; big-endian (`>f4`) is accepted.
    pub dtype: Option<String>,
    /// A raw IN's shape (default: 1-D from the file's size); one entry may
    /// be `-1`, inferred from the size.
    pub shape: Option<String>,
    /// Byte offset of a raw IN's data (default 0).
    pub offset: Option<u64>,
    /// A raw IN's memory order: `Some(true)` for Fortran order.
    pub fortran_order: Option<bool>,
}

/// IN, read: its layout, and the read started before it.
#[derive(Debug)]
pub struct OpenedInput {
    /// IN as given.
    pub path: PathBuf,
    /// Its layout.
    pub layout: Layout,
    reading: Reading,
}

impl ConvertInput {
    /// Starts reading `path` under the read discipline and reads its
    /// layout as this description says. Refusals (exit 2): a directory or
    /// special file, raw options without `raw`, a raw IN without a dtype, a
    /// file without the `.npy` magic described as a `.npy`.
    pub fn open(&self, path: &Path) -> Result<OpenedInput> {
        let reading = Reading::start(path)?;
        let layout = self.layout(path)?;
        Ok(OpenedInput {
            path: path.to_path_buf(),
            layout,
            reading,
        })
    }

    fn layout(&self, path: &Path) -> Result<Layout> {
        use std::io::{Read, Seek};
        let meta =
            std::fs::metadata(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
        if meta.is_dir() {
            return Err(Error::refused(format!("{} is a directory", path.display())));
        }
        if !meta.is_file() {
            return Err(Error::refused(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let described = self.dtype.is_some()
            || self.shape.is_some()
            || self.offset.is_some()
            || self.fortran_order.is_some();
        if described && !self.raw {
            return Err(Error::refused(
                "--in-dtype, --in-shape, --in-offset and --in-order describe a headerless IN: add --in-raw",
            ));
        }
        let mut file = File::open(path).map_err(|e| Error::io_refused("cannot open", path, e))?;
        if self.raw {
            let text = self.dtype.as_deref().ok_or_else(|| {
                Error::refused("--in-raw needs --in-dtype (a raw file has no header)")
            })?;
            // numpy.memmap takes big-endian dtypes, so a raw IN may be one.
            let (dtype, order) = match DType::parse_descr(text) {
                Some((d, ByteOrder::Big)) if text.starts_with('>') => (d, ByteOrder::Big),
                _ => (
                    text.parse()
                        .map_err(|e: crate::layout::dtype::ParseDTypeError| {
                            Error::refused(e.to_string())
                        })?,
                    ByteOrder::Little,
                ),
            };
            let offset = self.offset.unwrap_or(0);
            let spec = RawSpec {
                dtype,
                shape: self
                    .shape
                    .as_deref()
                    .map(|t| {
                        crate::layout::parse_shape_inferring(t, dtype.itemsize(), || {
                            super::raw_data_bytes(path, offset)
                        })
                    })
                    .transpose()?,
                offset,
            };
            let mut layout = Layout::read(path, &mut file, Some(&spec))?;
            layout.byte_order = order;
            layout.fortran_order = self.fortran_order == Some(true);
            return Ok(layout);
        }
        let mut prefix = Vec::with_capacity(6);
        (&mut file)
            .take(6)
            .read_to_end(&mut prefix)
            .map_err(|e| Error::io_refused("cannot read", path, e))?;
        if !npy::has_magic(&prefix) {
            return Err(Error::refused(format!(
                "{} is not a .npy file: for a headerless file give --in-raw --in-dtype (and --in-shape, --in-offset)",
                path.display()
            )));
        }
        file.seek(std::io::SeekFrom::Start(0))
            .map_err(|e| Error::io_refused("cannot read", path, e))?;
        Layout::read(path, &mut file, None)
    }
}

/// A checked conversion: its parameters and new output.
#[derive(Debug)]
pub struct Conversion {
    params: ConvertParams,
    target: Target,
    reading: Reading,
    /// IN, resolved, and its layout as read: what the workers map.
    input: PathBuf,
    in_layout: Layout,
    /// IN and OUT as given, for messages.
    shown: (PathBuf, PathBuf),
    /// OUT is a pending file this rank writes part of.
    rank: bool,
}

impl Conversion {
    /// A conversion of `input` into a new `.npy` at `output` of `out_dtype`
    /// (IN's when `None`) under the `casting` rule (`strict` also refuses
    /// per value: NaN or inf to an integer, values out of range). Refusals
    /// (exit 2): OUT is IN, OUT exists (see [`OutputOptions::force`]), a
    /// conversion the casting rule forbids.
    pub fn new(
        input: OpenedInput,
        output: &Path,
        out_dtype: Option<DType>,
        casting: Casting,
        strict: bool,
    ) -> Result<Conversion> {
        Self::with_output(
            input,
            output,
            out_dtype,
            casting,
            strict,
            OutputOptions::default(),
        )
    }

    /// As [`Conversion::new`], with how OUT is written.
    pub fn with_output(
        input: OpenedInput,
        output: &Path,
        out_dtype: Option<DType>,
        casting: Casting,
        strict: bool,
        options: OutputOptions,
    ) -> Result<Conversion> {
        let in_layout = &input.layout;
        let expect_dtype = out_dtype;
        let out_dtype = out_dtype.unwrap_or(in_layout.dtype);
        if let Ok(out) = std::fs::symlink_metadata(output) {
            let same = match (std::fs::metadata(&input.path), std::fs::metadata(output)) {
                (Ok(i), Ok(o)) => i.dev() == o.dev() && i.ino() == o.ino(),
                _ => false,
            };
            if same {
                return Err(Error::refused(format!(
                    "{} is the input file: convert writes a new file, give another OUT",
                    output.display()
                )));
            }
            if !options.force && !out.is_dir() && !options.rank {
                return Err(Error::refused(format!(
                    "{} already exists: use --force to replace it",
                    output.display()
                )));
            }
        }
        // Workers re-executed with --spawn exec may not share our directory.
        let real = std::fs::canonicalize(&input.path)
            .map_err(|e| Error::io_refused("cannot resolve", &input.path, e))?;
        let params = ConvertParams::new(real.clone(), in_layout, casting, strict);
        // A conversion the casting rule forbids is refused before anything.
        Convert::new(params.clone(), out_dtype)?;
        let shown = (input.path.clone(), output.to_path_buf());
        if options.rank {
            // Ranks write their part of an OUT made by `create --pending`.
            let mut target = Target::existing(output);
            target.expect_dtype = expect_dtype;
            return Ok(Conversion {
                params,
                target,
                reading: input.reading,
                input: real,
                in_layout: input.layout,
                shown,
                rank: true,
            });
        }
        let mut target = Target::new_npy(output, out_dtype, in_layout.shape.clone());
        target.force = options.force;
        target.create_only = true;
        if let Some(new) = target.create.as_mut() {
            new.header = options.header;
            new.raw = options.raw;
        }
        if options.raw {
            target.raw = Some(RawSpec {
                dtype: out_dtype,
                shape: Some(in_layout.shape.clone()),
                offset: 0,
            });
        }
        Ok(Conversion {
            params,
            target,
            reading: input.reading,
            input: real,
            in_layout: input.layout,
            shown,
            rank: false,
        })
    }

    /// The new file's target, for the runner.
    pub fn target(&self) -> Target {
        self.target.clone()
    }

    /// Runs with `runner` (built on [`Conversion::target`]); the run fails
    /// and publishes nothing if IN changed while it was read.
    pub fn run(self, runner: Runner) -> Result<RunSummary> {
        let params = self.params;
        let shape = self.in_layout.shape.clone();
        let (rank, (input, output)) = (self.rank, self.shown);
        runner
            .reading(self.reading)
            .input_layout(self.input, self.in_layout)
            .run(|layout| {
                if rank && layout.shape != shape {
                    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
                    return Err(Error::refused(format!(
                        "{} has shape {} but {} has {}: make OUT with mmrun create --pending {} --shape {} --dtype {} --force",
                        output.display(),
                        layout.shape_text(),
                        input.display(),
                        crate::layout::shape_text(&shape),
                        output.display(),
                        dims.join(","),
                        layout.dtype
                    )));
                }
                let k: Box<dyn Kernel> = Box::new(Convert::new(params, layout.dtype)?);
                Ok(Some(k))
            })
    }
}

/// How convert writes OUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputOptions {
    /// Replace an existing OUT (atomically), or discard a stale partial
    /// file.
    pub force: bool,
    /// Write OUT headerless, as `numpy.memmap` reads it.
    pub raw: bool,
    /// The `.npy` header's size.
    pub header: HeaderStyle,
    /// OUT is a pending file made by `create --pending`, of which this
    /// rank writes its part (`--distributed`): it must exist, with IN's
    /// shape (and `out_dtype`, when given).
    pub rank: bool,
}
