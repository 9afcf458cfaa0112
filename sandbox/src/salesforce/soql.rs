//! The SOQL the engine and the clients use: `SELECT` fields (parent fields through
//! dots) or `COUNT()`, `FROM`, `WHERE` with `= != <> < <= > >= LIKE IN NOT IN INCLUDES
//! EXCLUDES`, `NULL`, `TRUE`/`FALSE`, date and date-time literals, `TODAY`,
//! `LAST_N_DAYS:n`, `AND OR NOT` and parentheses, `ORDER BY` (several, `ASC`/`DESC`,
//! `NULLS FIRST|LAST`), `LIMIT`, `OFFSET`. Anything else is `MALFORMED_QUERY`, as
//! Salesforce answers.

use chrono::{DateTime, NaiveDate};

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Select,
    pub object: String,
    pub filter: Option<Expr>,
    pub order: Vec<Order>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    Count,
    /// Field paths as written (`Id`, `Account.Name`).
    Fields(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub field: String,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
    Date(NaiveDate),
    /// Epoch milliseconds.
    DateTime(i64),
    /// `TODAY`, `LAST_N_DAYS:n`: resolved against the clock when evaluated.
    Today,
    LastNDays(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: String,
        op: Op,
        value: Literal,
    },
    In {
        field: String,
        negated: bool,
        values: Vec<Literal>,
    },
    Includes {
        field: String,
        negated: bool,
        values: Vec<String>,
    },
}

impl Expr {
    /// Every field path the expression reads.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut f = a.fields();
                f.extend(b.fields());
                f
            }
            Expr::Not(e) => e.fields(),
            Expr::Cmp { field, .. } | Expr::In { field, .. } | Expr::Includes { field, .. } => {
                vec![field.as_str()]
            }
        }
    }
}

/// A query Salesforce would refuse as malformed, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(f64),
    Sym(&'static str),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Str(s) => format!("'{s}'"),
            Token::Num(n) => n.to_string(),
            Token::Sym(s) => (*s).to_owned(),
        }
    }
}

fn tokenize(q: &str) -> Result<Vec<Token>, Malformed> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(Malformed("unterminated string literal".into())),
                    Some('\\') => {
                        let escaped = chars.get(i + 1).copied().unwrap_or('\\');
                        s.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(s));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '.' | ':' | '-' | '+'))
            {
                // A date-time literal runs on through its offset; a number stops at a sign.
                if matches!(chars[i], '-' | '+')
                    && !chars[start..i].contains(&'T')
                    && !is_date_prefix(&chars[start..i])
                {
                    break;
                }
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            match text.parse::<f64>() {
                Ok(n)
                    if !text.contains('-')
                        || text.starts_with('-') && text[1..].parse::<f64>().is_ok() =>
                {
                    out.push(Token::Num(n))
                }
                _ => out.push(Token::Word(text)),
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | ':'))
            {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let sym = match two.as_str() {
                "!=" => Some("!="),
                "<>" => Some("<>"),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(s) = sym {
                out.push(Token::Sym(s));
                i += 2;
                continue;
            }
            let one = match c {
                '=' => "=",
                '<' => "<",
                '>' => ">",
                '(' => "(",
                ')' => ")",
                ',' => ",",
                other => return Err(Malformed(format!("unexpected token: '{other}'"))),
            };
            out.push(Token::Sym(one));
            i += 1;
        }
    }
    Ok(out)
}

/// `2024-01-31` so far: dashes belong to the literal.
fn is_date_prefix(chars: &[char]) -> bool {
    chars.len() <= 10 && chars.iter().all(|c| c.is_ascii_digit() || *c == '-')
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn unexpected(&self) -> Malformed {
        match self.peek() {
            Some(t) => Malformed(format!("unexpected token: '{}'", t.text())),
            None => Malformed("unexpected end of query".into()),
        }
    }

    fn keyword(&mut self, kw: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), Malformed> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<String, Malformed> {
        match self.peek() {
            Some(Token::Word(w)) if !is_reserved(w) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn number(&mut self) -> Result<usize, Malformed> {
        match self.next() {
            Some(Token::Num(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }

    fn query(&mut self) -> Result<Query, Malformed> {
        self.expect_keyword("SELECT")?;
        let select = if self.keyword("COUNT") {
            if !(self.sym("(") && self.sym(")")) {
                return Err(self.unexpected());
            }
            Select::Count
        } else {
            let mut fields = vec![self.ident()?];
            while self.sym(",") {
                fields.push(self.ident()?);
            }
            Select::Fields(fields)
        };
        self.expect_keyword("FROM")?;
        let object = self.ident()?;
        let filter = if self.keyword("WHERE") {
            Some(self.or()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.keyword("ORDER") {
            self.expect_keyword("BY")?;
            loop {
                let field = self.ident()?;
                let descending = if self.keyword("DESC") {
                    true
                } else {
                    self.keyword("ASC");
                    false
                };
                let nulls_last = if self.keyword("NULLS") {
                    if self.keyword("LAST") {
                        true
                    } else {
                        self.expect_keyword("FIRST")?;
                        false
                    }
                } else {
                    // Salesforce's default: nulls first ascending, last descending.
                    descending
                };
                order.push(Order {
                    field,
                    descending,
                    nulls_last,
                });
                if !self.sym(",") {
                    break;
                }
            }
        }
        let limit = if self.keyword("LIMIT") {
            Some(self.number()?)
        } else {
            None
        };
        let offset = if self.keyword("OFFSET") {
            Some(self.number()?)
        } else {
            None
        };
        if self.peek().is_some() {
            return Err(self.unexpected());
        }
        Ok(Query {
            select,
            object,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn or(&mut self) -> Result<Expr, Malformed> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, Malformed> {
        let mut left = self.unary()?;
        while self.keyword("AND") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, Malformed> {
        if self.keyword("NOT") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.sym("(") {
            let e = self.or()?;
            if !self.sym(")") {
                return Err(self.unexpected());
            }
            return Ok(e);
        }
        self.condition()
    }

    fn condition(&mut self) -> Result<Expr, Malformed> {
        let field = self.ident()?;
        let negated = self.keyword("NOT");
        if self.keyword("IN") {
            let values = self.list()?;
            return Ok(Expr::In {
                field,
                negated,
                values,
            });
        }
        if negated {
            return Err(self.unexpected());
        }
        for (kw, neg) in [("INCLUDES", false), ("EXCLUDES", true)] {
            if self.keyword(kw) {
                let values = self
                    .list()?
                    .into_iter()
                    .map(|l| match l {
                        Literal::Str(s) => Ok(s),
                        _ => Err(Malformed(format!("{kw} takes string values"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Expr::Includes {
                    field,
                    negated: neg,
                    values,
                });
            }
        }
        let op = if self.keyword("LIKE") {
            Op::Like
        } else {
            match self.next() {
                Some(Token::Sym("=")) => Op::Eq,
                Some(Token::Sym("!=" | "<>")) => Op::Ne,
                Some(Token::Sym("<")) => Op::Lt,
                Some(Token::Sym("<=")) => Op::Le,
                Some(Token::Sym(">")) => Op::Gt,
                Some(Token::Sym(">=")) => Op::Ge,
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected());
                }
            }
        };
        let value = self.literal()?;
        Ok(Expr::Cmp { field, op, value })
    }

    fn list(&mut self) -> Result<Vec<Literal>, Malformed> {
        if !self.sym("(") {
            return Err(self.unexpected());
        }
        let mut values = vec![self.literal()?];
        while self.sym(",") {
            values.push(self.literal()?);
        }
        if !self.sym(")") {
            return Err(self.unexpected());
        }
        Ok(values)
    }

    fn literal(&mut self) -> Result<Literal, Malformed> {
        let t = self
            .next()
            .ok_or_else(|| Malformed("unexpected end of query".into()))?;
        Ok(match t {
            Token::Str(s) => Literal::Str(s),
            Token::Num(n) => Literal::Num(n),
            Token::Word(w) => {
                let upper = w.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => Literal::Null,
                    "TRUE" => Literal::Bool(true),
                    "FALSE" => Literal::Bool(false),
                    "TODAY" => Literal::Today,
                    _ => {
                        if let Some(n) = upper.strip_prefix("LAST_N_DAYS:") {
                            Literal::LastNDays(
                                n.parse()
                                    .map_err(|_| Malformed(format!("unexpected token: '{w}'")))?,
                            )
                        } else if let Ok(d) = NaiveDate::parse_from_str(&w, "%Y-%m-%d") {
                            Literal::Date(d)
                        } else if let Ok(t) = DateTime::parse_from_rfc3339(&w) {
                            Literal::DateTime(t.timestamp_millis())
                        } else if let Ok(t) = DateTime::parse_from_str(&w, "%Y-%m-%dT%H:%M:%S%.f%z")
                        {
                            Literal::DateTime(t.timestamp_millis())
                        } else {
                            return Err(Malformed(format!("unexpected token: '{w}'")));
                        }
                    }
                }
            }
            Token::Sym(s) => return Err(Malformed(format!("unexpected token: '{s}'"))),
        })
    }
}

fn is_reserved(w: &str) -> bool {
    const RESERVED: [&str; 16] = [
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "ORDER", "BY", "LIMIT", "OFFSET", "IN",
        "LIKE", "INCLUDES", "EXCLUDES", "NULLS", "ASC",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w)) || w.eq_ignore_ascii_case("DESC")
}

/// Parses a SOQL statement.
pub fn parse(q: &str) -> Result<Query, Malformed> {
    let mut p = Parser {
        tokens: tokenize(q)?,
        pos: 0,
    };
    p.query()
}

/// SOQL `LIKE`: `%` any run, `_` one character, case-insensitive.
///
/// Without allocating where both sides are ASCII: a company match sends fifty
/// `Website LIKE '%domain%'` terms per query, each tried on every Account (the scale
/// bench's sandbox spent most of its CPU here).
pub fn like(value: &str, pattern: &str) -> bool {
    if value.is_ascii() && pattern.is_ascii() {
        return wildcard(
            value.as_bytes(),
            pattern.as_bytes(),
            (b'%', b'_'),
            |p, v| p.eq_ignore_ascii_case(&v),
        );
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    wildcard(&v, &p, ('%', '_'), |p, v| p == v)
}

/// Whether `v` matches `p`, whose `any` matches any run and `one` any one element:
/// left to right, going back only to the last `any` (linear for one wildcard run,
/// at worst the product of the lengths).
fn wildcard<T: Copy + PartialEq>(
    v: &[T],
    p: &[T],
    (any, one): (T, T),
    same: impl Fn(T, T) -> bool,
) -> bool {
    let (mut i, mut j) = (0, 0);
    // Where the pattern goes on after its last `any`, and where in the value that
    // `any`'s run ends so far.
    let mut resume: Option<(usize, usize)> = None;
    while i < v.len() {
        if j < p.len() && p[j] == any {
            resume = Some((j + 1, i));
            j += 1;
        } else if j < p.len() && (p[j] == one || same(p[j], v[i])) {
            i += 1;
            j += 1;
        } else if let Some((after, end)) = resume {
            resume = Some((after, end + 1));
            j = after;
            i = end + 1;
        } else {
            return false;
        }
    }
    p[j..].iter().all(|c| *c == any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(q: &str) -> Query {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    #[test]
    fn a_poll_query_parses() {
        let q = ok(
            "SELECT Id, Email, Account.Name FROM Contact WHERE SystemModstamp > 2024-05-06T10:00:00.000Z AND (IsDeleted = false OR Email != null) ORDER BY SystemModstamp ASC, Id LIMIT 200",
        );
        assert_eq!(
            q.select,
            Select::Fields(vec!["Id".into(), "Email".into(), "Account.Name".into()])
        );
        assert_eq!(q.object, "Contact");
        assert_eq!(q.limit, Some(200));
        assert_eq!(q.order.len(), 2);
        let Some(Expr::And(left, right)) = q.filter else {
            panic!("expected AND");
        };
        assert_eq!(
            *left,
            Expr::Cmp {
                field: "SystemModstamp".into(),
                op: Op::Gt,
                value: Literal::DateTime(1_714_989_600_000)
            }
        );
        assert!(matches!(*right, Expr::Or(_, _)));
    }

    #[test]
    fn every_operator_and_literal() {
        let q = ok(
            "select id from Lead where Email like '%@acme.com' and Status in ('Open', 'Working') and Rating not in ('Cold') and Tags__c includes ('a;b', 'c') and CreatedDate >= 2024-01-31 and CreatedDate < 2024-01-31T23:01:01+01:00 and NumberOfEmployees <= 10.5 and IsConverted = TRUE and LastModifiedDate = LAST_N_DAYS:7 and Name <> 'O\\'Brien' and not Company = null offset 10",
        );
        assert_eq!(q.offset, Some(10));
        let fields = q.filter.as_ref().map(Expr::fields).unwrap_or_default();
        assert_eq!(fields.len(), 11);
        assert!(format!("{:?}", q.filter).contains("O'Brien"));
    }

    #[test]
    fn count_queries() {
        assert_eq!(ok("SELECT COUNT() FROM Account").select, Select::Count);
    }

    #[test]
    fn malformed_queries_say_where() {
        assert_eq!(
            parse("SELECT Id FRM Account").err(),
            Some(Malformed("unexpected token: 'FRM'".into()))
        );
        assert!(parse("SELECT FROM Account").is_err());
        assert!(parse("SELECT Id FROM Account WHERE").is_err());
        assert!(parse("SELECT Id FROM Account WHERE Name = 'unterminated").is_err());
        assert!(parse("SELECT Id FROM Account LIMIT -1").is_err());
        assert!(parse("SELECT Id FROM Account WHERE (Name = 'x'").is_err());
        assert!(parse("SELECT Id FROM Account extra").is_err());
        assert!(parse("DELETE FROM Account").is_err());
    }

    #[test]
    fn like_patterns() {
        assert!(like("ana@ACME.com", "%@acme.com"));
        assert!(like("abc", "a_c"));
        assert!(!like("abcd", "a_c"));
        assert!(like("", "%"));
        assert!(like(
            "https://www.Initech.example/about",
            "%initech.example%"
        ));
        assert!(!like(
            "https://www.initech.example",
            "%initech.example.org%"
        ));
        assert!(like("Zoë Müller", "%MÜLLER"));
        assert!(!like("Zoë", "zoe"));
    }

    /// `LIKE` as it reads: every way of splitting the value over the pattern.
    fn like_by_definition(value: &str, pattern: &str) -> bool {
        fn go(v: &[char], p: &[char]) -> bool {
            match p.split_first() {
                None => v.is_empty(),
                Some(('%', rest)) => (0..=v.len()).any(|i| go(&v[i..], rest)),
                Some(('_', rest)) => !v.is_empty() && go(&v[1..], rest),
                Some((c, rest)) => v.first().is_some_and(|x| x == c) && go(&v[1..], rest),
            }
        }
        let v: Vec<char> = value.to_lowercase().chars().collect();
        let p: Vec<char> = pattern.to_lowercase().chars().collect();
        go(&v, &p)
    }

    #[test]
    fn like_says_what_its_definition_says() {
        // Every value and pattern of up to four characters over a small alphabet (the
        // wildcards, letters in both cases, a non-ASCII one).
        let alphabet = ['a', 'B', 'b', '%', '_', 'é'];
        let mut words = vec![String::new()];
        let mut longest = vec![String::new()];
        for _ in 0..4 {
            longest = longest
                .iter()
                .flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}")))
                .collect();
            words.extend(longest.iter().cloned());
        }
        let values: Vec<&String> = words.iter().filter(|w| !w.contains(['%', '_'])).collect();
        let mut checked = 0;
        for p in &words {
            for v in &values {
                assert_eq!(like(v, p), like_by_definition(v, p), "{v:?} LIKE {p:?}");
                checked += 1;
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
