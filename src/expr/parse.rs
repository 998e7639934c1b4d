//! Expression text to syntax tree: tokenizer and recursive-descent parser.
//!
//! The grammar is the Python subset `apply --expr` accepts, with Python's
//! precedence (`**` binds tighter than a unary minus on its left and is
//! right-associative; comparisons bind loosest and do not chain). Names are
//! resolved here (variables, `True`/`False`/`nan`/`inf`, functions and their
//! arity) so every syntax-level mistake is reported with the 1-based column
//! of the token that caused it. Number literals are parsed as Python parses
//! them; their values live in [`PyVal`].

use super::pyval::PyVal;
use super::ExprError;
use crate::layout::DType;

/// Deepest nesting accepted, so hostile input cannot overflow the stack:
/// parentheses, calls and unary operators, and also every operator of a
/// chain (`x+x+…+x` is a tree as deep as it is long, which every later
/// pass walks recursively).
const MAX_DEPTH: usize = 200;

/// Most tokens accepted: bounds the tree's size whatever its shape.
const MAX_TOKENS: usize = 4096;

/// A variable of the expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Var {
    /// The element, of the file's dtype.
    X,
    /// Axis-0 index.
    I,
    /// Axis-1 index.
    J,
    /// Flat index within the row.
    K,
    /// Flat index in the file.
    N,
}

/// A binary arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Rem,
    Pow,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl CmpOp {
    /// The operator with its operands swapped: `a < b` is `b > a`.
    pub(crate) fn swapped(self) -> CmpOp {
        match self {
            CmpOp::Lt => CmpOp::Gt,
            CmpOp::Le => CmpOp::Ge,
            CmpOp::Gt => CmpOp::Lt,
            CmpOp::Ge => CmpOp::Le,
            CmpOp::Eq => CmpOp::Eq,
            CmpOp::Ne => CmpOp::Ne,
        }
    }

    /// Applies the operator to an ordering (`None`: unordered, NaN).
    pub(crate) fn holds(self, ord: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match (self, ord) {
            (CmpOp::Ne, None) => true,
            (_, None) => false,
            (CmpOp::Lt, Some(o)) => o == Less,
            (CmpOp::Le, Some(o)) => o != Greater,
            (CmpOp::Gt, Some(o)) => o == Greater,
            (CmpOp::Ge, Some(o)) => o != Less,
            (CmpOp::Eq, Some(o)) => o == Equal,
            (CmpOp::Ne, Some(o)) => o != Equal,
        }
    }
}

/// A function of the expression language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Abs,
    Sqrt,
    Exp,
    Log,
    Log2,
    Log10,
    Sin,
    Cos,
    Tan,
    Floor,
    Ceil,
    Round,
    Min,
    Max,
    Clip,
    Where,
    Tanh,
    /// `np.rint`: like `round`, but integers go through the float loop.
    Rint,
    Sign,
    IsNan,
    IsFinite,
    IsInf,
    Arctan2,
    Hypot,
    /// `np.real`: the real part (a real array is itself).
    Real,
    /// `np.imag`: the imaginary part (zeros for a real array).
    Imag,
    /// `np.conj`/`np.conjugate`.
    Conj,
    /// `np.angle`: `arctan2(imag, real)`.
    Angle,
    /// A NumPy scalar type called as a function (`np.float32(x)`), or
    /// `x.astype(T)`: NumPy's unsafe cast.
    Cast(DType),
}

/// The dtype NumPy's scalar type `name` (`float32`, `uint8`, `bool_`…)
/// stands for, as a function or as `astype`'s argument.
fn scalar_type(name: &str) -> Option<DType> {
    Some(match name {
        "bool_" | "bool" => DType::Bool,
        "int8" | "byte" => DType::I8,
        "int16" | "short" => DType::I16,
        "int32" | "intc" => DType::I32,
        "int64" | "long" | "longlong" | "intp" => DType::I64,
        "uint8" | "ubyte" => DType::U8,
        "uint16" | "ushort" => DType::U16,
        "uint32" | "uintc" => DType::U32,
        "uint64" | "ulong" | "ulonglong" | "uintp" => DType::U64,
        "float16" | "half" => DType::F16,
        "float32" | "single" => DType::F32,
        "float64" | "double" => DType::F64,
        "complex64" | "csingle" => DType::C64,
        "complex128" | "cdouble" => DType::C128,
        _ => return None,
    })
}

/// `np.NAME` or `numpy.NAME`: NAME, else `None`.
fn unprefixed(name: &str) -> Option<&str> {
    name.strip_prefix("np.")
        .or_else(|| name.strip_prefix("numpy."))
}

impl Func {
    fn from_name(name: &str) -> Option<Func> {
        Some(match name {
            "abs" | "absolute" => Func::Abs,
            "sqrt" => Func::Sqrt,
            "exp" => Func::Exp,
            "log" => Func::Log,
            "log2" => Func::Log2,
            "log10" => Func::Log10,
            "sin" => Func::Sin,
            "cos" => Func::Cos,
            "tan" => Func::Tan,
            "floor" => Func::Floor,
            "ceil" => Func::Ceil,
            "round" => Func::Round,
            "rint" => Func::Rint,
            "min" | "minimum" => Func::Min,
            "max" | "maximum" => Func::Max,
            "clip" => Func::Clip,
            "where" => Func::Where,
            "tanh" => Func::Tanh,
            "sign" => Func::Sign,
            "isnan" => Func::IsNan,
            "isfinite" => Func::IsFinite,
            "isinf" => Func::IsInf,
            "arctan2" => Func::Arctan2,
            "hypot" => Func::Hypot,
            "real" => Func::Real,
            "imag" => Func::Imag,
            "conj" | "conjugate" => Func::Conj,
            "angle" => Func::Angle,
            _ => return None,
        })
    }

    /// Number of arguments the function takes.
    pub(crate) fn arity(self) -> usize {
        match self {
            Func::Min | Func::Max | Func::Arctan2 | Func::Hypot => 2,
            Func::Clip | Func::Where => 3,
            _ => 1,
        }
    }
}

/// A node of the syntax tree, with the column of its defining token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// 1-based column of the token (operator, name or literal).
    pub col: usize,
    /// What the node is.
    pub kind: NodeKind,
}

/// The kinds of syntax-tree nodes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Lit(PyVal),
    Var(Var),
    Neg(Box<Node>),
    Pos(Box<Node>),
    /// `~a`.
    Invert(Box<Node>),
    Bin(BinOp, Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(PyVal),
    Name(String),
    /// A string literal (only as `astype`'s argument).
    Str(String),
    Op(&'static str),
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    col: usize,
}

fn err(col: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        column: col,
        message: message.into(),
    }
}

const OPERATORS: [&str; 23] = [
    "**", "//", "<=", ">=", "==", "!=", "<<", ">>", "+", "-", "*", "/", "%", "<", ">", "(", ")",
    ",", "=", "&", "|", "^", "~",
];

fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut p = 0;
    while p < chars.len() {
        let c = chars[p];
        let col = p + 1;
        if c.is_whitespace() {
            p += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(p + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let (val, end) = number(&chars, p)?;
            out.push(Token {
                tok: Tok::Num(val),
                col,
            });
            p = end;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = p;
            let word = |p: &mut usize| {
                while *p < chars.len() && (chars[*p].is_alphanumeric() || chars[*p] == '_') {
                    *p += 1;
                }
            };
            word(&mut p);
            // `np.NAME` and `numpy.NAME` are one name.
            let head: String = chars[start..p].iter().collect();
            if (head == "np" || head == "numpy")
                && chars.get(p) == Some(&'.')
                && chars
                    .get(p + 1)
                    .is_some_and(|c| c.is_alphabetic() || *c == '_')
            {
                p += 1;
                word(&mut p);
            }
            out.push(Token {
                tok: Tok::Name(chars[start..p].iter().collect()),
                col,
            });
            continue;
        }
        if c == '\'' || c == '"' {
            let end = chars[p + 1..]
                .iter()
                .position(|&q| q == c)
                .ok_or_else(|| err(col, "string literal is never closed"))?;
            out.push(Token {
                tok: Tok::Str(chars[p + 1..p + 1 + end].iter().collect()),
                col,
            });
            p += end + 2;
            continue;
        }
        if c == '.' {
            out.push(Token {
                tok: Tok::Op("."),
                col,
            });
            p += 1;
            continue;
        }
        let rest: String = chars[p..chars.len().min(p + 2)].iter().collect();
        let op = OPERATORS.iter().find(|op| rest.starts_with(**op));
        match op {
            Some(&"=") => return Err(err(col, "'=' is not an operator here (use '==')")),
            Some(op) => {
                out.push(Token {
                    tok: Tok::Op(op),
                    col,
                });
                p += op.len();
            }
            None => return Err(err(col, format!("unexpected character '{c}'"))),
        }
    }
    out.push(Token {
        tok: Tok::End,
        col: chars.len() + 1,
    });
    Ok(out)
}

/// Checks Python's rule for underscores in a digit run and removes them.
fn strip_underscores(s: &str, col: usize) -> Result<String, ExprError> {
    if s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return Err(err(col, format!("invalid number literal '{s}'")));
    }
    Ok(s.replace('_', ""))
}

/// Parses a number starting at `start`; returns its value and end index.
fn number(chars: &[char], start: usize) -> Result<(PyVal, usize), ExprError> {
    let col = start + 1;
    let mut p = start;
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let radix = if chars[p] == '0' {
        match chars.get(p + 1).map(|c| c.to_ascii_lowercase()) {
            Some('x') => Some(16),
            Some('o') => Some(8),
            Some('b') => Some(2),
            _ => None,
        }
    } else {
        None
    };
    if let Some(radix) = radix {
        p += 2;
        let s = p;
        while p < chars.len() && is_word(chars[p]) {
            p += 1;
        }
        let raw: String = chars[s..p].iter().collect();
        let lit: String = chars[start..p].iter().collect();
        // Python allows one underscore right after the prefix.
        let digits = strip_underscores(raw.strip_prefix('_').unwrap_or(&raw), col)
            .map_err(|_| err(col, format!("invalid number literal '{lit}'")))?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return Err(err(col, format!("invalid number literal '{lit}'")));
        }
        let v = i128::from_str_radix(&digits, radix)
            .map_err(|_| err(col, format!("integer literal '{lit}' is too large")))?;
        return Ok((PyVal::Int(v), p));
    }
    let s = p;
    while p < chars.len() && (chars[p].is_ascii_digit() || chars[p] == '_') {
        p += 1;
    }
    let int_part: String = chars[s..p].iter().collect();
    let mut is_float = false;
    let mut frac_part = String::new();
    if p < chars.len() && chars[p] == '.' {
        is_float = true;
        p += 1;
        let f = p;
        while p < chars.len() && (chars[p].is_ascii_digit() || chars[p] == '_') {
            p += 1;
        }
        frac_part = chars[f..p].iter().collect();
    }
    let mut exp_part = String::new();
    if p < chars.len() && (chars[p] == 'e' || chars[p] == 'E') {
        let mut q = p + 1;
        if q < chars.len() && (chars[q] == '+' || chars[q] == '-') {
            q += 1;
        }
        if q < chars.len() && chars[q].is_ascii_digit() {
            let e = p + 1;
            p = q;
            while p < chars.len() && (chars[p].is_ascii_digit() || chars[p] == '_') {
                p += 1;
            }
            exp_part = chars[e..p].iter().collect();
            is_float = true;
        }
    }
    let lit: String = chars[start..p].iter().collect();
    // An imaginary literal (`2j`, `1.5e3J`, `010j`): Python's complex with
    // a zero real part; leading zeros are allowed, as in floats.
    let imaginary = p < chars.len() && (chars[p] == 'j' || chars[p] == 'J');
    let end = if imaginary { p + 1 } else { p };
    if end < chars.len() && (is_word(chars[end]) || chars[end] == '.') {
        let mut q = p;
        while q < chars.len() && (is_word(chars[q]) || chars[q] == '.') {
            q += 1;
        }
        let bad: String = chars[start..q.max(end)].iter().collect();
        return Err(err(col, format!("invalid number literal '{bad}'")));
    }
    let int_digits = if int_part.is_empty() {
        String::new()
    } else {
        strip_underscores(&int_part, col)?
    };
    if is_float || imaginary {
        let frac = if frac_part.is_empty() {
            String::new()
        } else {
            strip_underscores(&frac_part, col)?
        };
        let exp = if exp_part.is_empty() {
            String::new()
        } else {
            let (sign, digits) = match exp_part.chars().next() {
                Some(c @ ('+' | '-')) => (c.to_string(), &exp_part[1..]),
                _ => (String::new(), &exp_part[..]),
            };
            format!("e{sign}{}", strip_underscores(digits, col)?)
        };
        let text = format!(
            "{}.{}{}",
            if int_digits.is_empty() {
                "0"
            } else {
                &int_digits
            },
            if frac.is_empty() { "0" } else { &frac },
            exp
        );
        let v: f64 = text
            .parse()
            .map_err(|_| err(col, format!("invalid number literal '{lit}'")))?;
        if imaginary {
            return Ok((PyVal::Complex(0.0, v), end));
        }
        return Ok((PyVal::Float(v), p));
    }
    if int_digits.len() > 1 && int_digits.starts_with('0') && int_digits.chars().any(|c| c != '0') {
        return Err(err(
            col,
            format!("leading zeros in decimal integer literals are not permitted ('{lit}')"),
        ));
    }
    let v: i128 = int_digits
        .parse()
        .map_err(|_| err(col, format!("integer literal '{lit}' is too large")))?;
    Ok((PyVal::Int(v), p))
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Num(_) => "number".into(),
        Tok::Name(n) => format!("'{n}'"),
        Tok::Str(_) => "string".into(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "end of expression".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.peek().tok {
            Tok::Op(o) => Some(o),
            _ => None,
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(
                self.peek().col,
                format!(
                    "expression is nested too deeply or too long (more than {MAX_DEPTH} levels of operations)"
                ),
            ));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Node, ExprError> {
        self.enter()?;
        let left = self.bitor()?;
        let cmp = |o: &str| match o {
            "<" => Some(CmpOp::Lt),
            "<=" => Some(CmpOp::Le),
            ">" => Some(CmpOp::Gt),
            ">=" => Some(CmpOp::Ge),
            "==" => Some(CmpOp::Eq),
            "!=" => Some(CmpOp::Ne),
            _ => None,
        };
        let node = if let Some(op) = self.peek_op().and_then(cmp) {
            let col = self.next().col;
            let right = self.bitor()?;
            if self.peek_op().and_then(cmp).is_some() {
                return Err(err(
                    self.peek().col,
                    "chained comparisons are not supported (NumPy arrays cannot be chained): use parentheses",
                ));
            }
            Node {
                col,
                kind: NodeKind::Cmp(op, Box::new(left), Box::new(right)),
            }
        } else {
            left
        };
        self.depth -= 1;
        Ok(node)
    }

    /// A left-associative chain of the binary operators `ops` over
    /// operands `next` parses; every operator counts as a level of depth.
    fn chain(
        &mut self,
        ops: &[(&str, BinOp)],
        next: fn(&mut Self) -> Result<Node, ExprError>,
    ) -> Result<Node, ExprError> {
        let mut left = next(self)?;
        let mut levels = 0;
        while let Some(op) = self.peek_op() {
            let Some(&(_, op)) = ops.iter().find(|(o, _)| *o == op) else {
                break;
            };
            self.enter()?;
            levels += 1;
            let col = self.next().col;
            let right = next(self)?;
            left = Node {
                col,
                kind: NodeKind::Bin(op, Box::new(left), Box::new(right)),
            };
        }
        self.depth -= levels;
        Ok(left)
    }

    fn bitor(&mut self) -> Result<Node, ExprError> {
        self.chain(&[("|", BinOp::BitOr)], Self::bitxor)
    }

    fn bitxor(&mut self) -> Result<Node, ExprError> {
        self.chain(&[("^", BinOp::BitXor)], Self::bitand)
    }

    fn bitand(&mut self) -> Result<Node, ExprError> {
        self.chain(&[("&", BinOp::BitAnd)], Self::shift)
    }

    fn shift(&mut self) -> Result<Node, ExprError> {
        self.chain(&[("<<", BinOp::Shl), (">>", BinOp::Shr)], Self::arith)
    }

    fn arith(&mut self) -> Result<Node, ExprError> {
        self.chain(&[("+", BinOp::Add), ("-", BinOp::Sub)], Self::term)
    }

    fn term(&mut self) -> Result<Node, ExprError> {
        self.chain(
            &[
                ("*", BinOp::Mul),
                ("/", BinOp::Div),
                ("//", BinOp::FloorDiv),
                ("%", BinOp::Rem),
            ],
            Self::factor,
        )
    }

    fn factor(&mut self) -> Result<Node, ExprError> {
        match self.peek_op() {
            Some(o @ ("-" | "+" | "~")) => {
                self.enter()?;
                let col = self.next().col;
                let arg = Box::new(self.factor()?);
                self.depth -= 1;
                Ok(Node {
                    col,
                    kind: match o {
                        "-" => NodeKind::Neg(arg),
                        "+" => NodeKind::Pos(arg),
                        _ => NodeKind::Invert(arg),
                    },
                })
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<Node, ExprError> {
        let base = self.postfix()?;
        if self.peek_op() == Some("**") {
            self.enter()?;
            let col = self.next().col;
            let exp = self.factor()?;
            self.depth -= 1;
            return Ok(Node {
                col,
                kind: NodeKind::Bin(BinOp::Pow, Box::new(base), Box::new(exp)),
            });
        }
        Ok(base)
    }

    /// A primary followed by `.astype(T)` calls.
    fn postfix(&mut self) -> Result<Node, ExprError> {
        let mut node = self.primary()?;
        let mut levels = 0;
        while self.peek_op() == Some(".") {
            self.enter()?;
            levels += 1;
            let dot = self.next().col;
            let t = self.next();
            match t.tok {
                Tok::Name(m) if m == "astype" => {}
                Tok::Name(m) => {
                    return Err(err(
                        t.col,
                        format!("unknown method '{m}' (only .astype(T) is supported)"),
                    ))
                }
                _ => return Err(err(dot, "expected a method name after '.'")),
            }
            let open = self.next();
            if open.tok != Tok::Op("(") {
                return Err(err(open.col, "call it as .astype(T)"));
            }
            let arg = self.next();
            let dt = match &arg.tok {
                Tok::Str(s) => s
                    .parse::<DType>()
                    .map_err(|e| err(arg.col, e.to_string()))?,
                Tok::Name(n) => {
                    let base = unprefixed(n);
                    base.and_then(scalar_type)
                        .or_else(|| match n.as_str() {
                            "float" => Some(DType::F64),
                            "int" => Some(DType::I64),
                            "bool" => Some(DType::Bool),
                            "complex" => Some(DType::C128),
                            _ => scalar_type(n).filter(|_| !n.contains('.') && n != "bool_"),
                        })
                        .ok_or_else(|| err(arg.col, format!("'{n}' is not a dtype")))?
                }
                other => {
                    return Err(err(
                        arg.col,
                        format!(
                            "expected a dtype ('f8', np.float32, float), found {}",
                            describe(other)
                        ),
                    ))
                }
            };
            self.expect_close(open.col)?;
            node = Node {
                col: dot,
                kind: NodeKind::Call(Func::Cast(dt), vec![node]),
            };
        }
        self.depth -= levels;
        Ok(node)
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let t = self.next();
        let col = t.col;
        match t.tok {
            Tok::Num(v) => Ok(Node {
                col,
                kind: NodeKind::Lit(v),
            }),
            Tok::Op("(") => {
                let inner = self.expr()?;
                self.expect_close(col)?;
                Ok(inner)
            }
            Tok::Name(name) => self.name(name, col),
            other => Err(err(
                col,
                format!(
                    "expected a number, a name or '(', found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn expect_close(&mut self, open_col: usize) -> Result<(), ExprError> {
        let t = self.next();
        match t.tok {
            Tok::Op(")") => Ok(()),
            Tok::End => Err(err(
                t.col,
                format!("'(' at column {open_col} is never closed"),
            )),
            other => Err(err(
                t.col,
                format!("expected ')' or an operator, found {}", describe(&other)),
            )),
        }
    }

    fn name(&mut self, name: String, col: usize) -> Result<Node, ExprError> {
        let called = self.peek_op() == Some("(");
        let simple = |kind| Ok(Node { col, kind });
        let prefixed = unprefixed(&name);
        if let Some(base @ ("min" | "max")) = prefixed {
            return Err(err(
                col,
                format!(
                    "{name} reduces an array (use np.{base}imum(a, b) for the element-wise {base}imum, or mmrun reduce --op {base})"
                ),
            ));
        }
        let base = prefixed.unwrap_or(&name);
        let func = Func::from_name(base).or_else(|| {
            // `np.bool_(x)`, `float32(x)`; bare `bool` is Python's, not an array cast.
            scalar_type(base)
                .filter(|_| prefixed.is_some() || base != "bool")
                .map(Func::Cast)
        });
        if let Some(func) = func {
            if !called {
                return Err(err(
                    col,
                    format!("'{name}' is a function: call it as {name}(...)"),
                ));
            }
            self.enter()?;
            let open = self.next().col;
            let mut args = Vec::new();
            if self.peek_op() != Some(")") {
                loop {
                    args.push(self.expr()?);
                    if self.peek_op() == Some(",") {
                        self.next();
                        if self.peek_op() == Some(")") {
                            break;
                        }
                        continue;
                    }
                    break;
                }
            }
            self.expect_close(open)?;
            self.depth -= 1;
            if args.len() != func.arity() {
                let n = func.arity();
                return Err(err(
                    col,
                    format!(
                        "{name}() takes {n} argument{} ({} given)",
                        if n == 1 { "" } else { "s" },
                        args.len()
                    ),
                ));
            }
            return Ok(Node {
                col,
                kind: NodeKind::Call(func, args),
            });
        }
        let kind = match prefixed {
            Some("nan" | "NaN" | "NAN") => NodeKind::Lit(PyVal::Float(f64::NAN)),
            Some("inf" | "Inf" | "infty") => NodeKind::Lit(PyVal::Float(f64::INFINITY)),
            Some("pi") => NodeKind::Lit(PyVal::Float(std::f64::consts::PI)),
            Some("e") => NodeKind::Lit(PyVal::Float(std::f64::consts::E)),
            Some(_) => {
                return Err(err(
                    col,
                    format!("unknown name '{name}' (mmrun supports {})", SUPPORTED),
                ))
            }
            None => match name.as_str() {
                "x" => NodeKind::Var(Var::X),
                "i" => NodeKind::Var(Var::I),
                "j" => NodeKind::Var(Var::J),
                "k" => NodeKind::Var(Var::K),
                "n" => NodeKind::Var(Var::N),
                "True" => NodeKind::Lit(PyVal::Bool(true)),
                "False" => NodeKind::Lit(PyVal::Bool(false)),
                "nan" => NodeKind::Lit(PyVal::Float(f64::NAN)),
                "inf" => NodeKind::Lit(PyVal::Float(f64::INFINITY)),
                "pi" => NodeKind::Lit(PyVal::Float(std::f64::consts::PI)),
                _ => return Err(err(col, format!("unknown name '{name}'"))),
            },
        };
        if called {
            return Err(err(col, format!("'{name}' is not a function")));
        }
        simple(kind)
    }
}

/// The NumPy names `--expr` knows, for the message on an unknown `np.` name.
const SUPPORTED: &str = "np.abs sqrt exp log log2 log10 sin cos tan tanh floor ceil round rint \
sign isnan isfinite isinf arctan2 hypot minimum maximum clip where real imag conj conjugate angle, \
the scalar types (np.float32(x), np.complex64(x) ...), nan inf pi e";

/// Parses `text` into a syntax tree.
pub(crate) fn parse(text: &str) -> Result<Node, ExprError> {
    let toks = tokenize(text)?;
    // Bounds the tree for every later (recursive) pass whatever its shape.
    if let Some(t) = toks.get(MAX_TOKENS) {
        return Err(err(
            t.col,
            format!("the expression is too long (over {MAX_TOKENS} tokens)"),
        ));
    }
    if matches!(toks[0].tok, Tok::End) {
        return Err(err(1, "empty expression"));
    }
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    let node = p.expr()?;
    let t = p.peek();
    if !matches!(t.tok, Tok::End) {
        let msg = match &t.tok {
            Tok::Op(")") => "unmatched ')'".to_string(),
            other => format!("unexpected {} after a complete expression", describe(other)),
        };
        return Err(err(t.col, msg));
    }
    Ok(node)
}
