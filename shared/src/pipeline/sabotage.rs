//! Deliberately broken engines, to prove the convergence harness can fail: each variant
//! switches off one guarantee, and a test shows the harness catching it. Nothing in
//! production sets one (no configuration key or environment variable reads it); only
//! tests set [`super::Pipeline::sabotage`].

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// A linked pair's fields are written to Salesforce even when it holds them already:
    /// our own writes, read back, are not recognised (echo loops).
    EchoSuppressionOff,
    /// Creates go ahead without claiming their dedup key (two workers may both create).
    ClaimsOff,
    /// A newly linked pair's link is not stored.
    LinkWriteSkipped,
    /// A record skipped for a reason does not say so on its status.
    ReasonNotRecorded,
}

impl super::Pipeline {
    pub(crate) fn sabotaged(&self, s: Sabotage) -> bool {
        self.sabotage == Some(s)
    }
}
