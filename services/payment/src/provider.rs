//! The card provider: a trait a real provider's SDK would implement, the simulated
//! provider the system runs with, and the guard every call goes through.
//!
//! The simulated provider approves `tok_visa` and declines `tok_declined`. Its fault
//! mode fails a share of calls and delays every one, so the saga's retries and the
//! breaker can be watched at work. Like a real provider it is idempotent: a charge
//! repeated with the same key (after a crash between charging and recording it) is
//! the same charge, with the same reference.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use service_client::{BreakerConfig, CircuitBreaker, breaker::Outcome};
use tokio::time::Instant;

/// A charge to make.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// Makes a repeated charge the same charge: the order id.
    pub idempotency_key: String,
    pub amount_cents: i64,
    pub currency: String,
    pub payment_method: String,
}

/// The provider's answer to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Approved { reference: String },
    Declined { reference: String },
}

/// The provider could not be reached or failed; worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("the card provider failed: {0}")]
    Failed(String),
    #[error("the card provider did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the card provider is failing; its breaker is open")]
    BreakerOpen,
}

/// What the payment service needs of a card provider.
pub trait CardProvider: Send + Sync {
    /// Charges once per `request.idempotency_key`.
    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProviderError>>;

    /// Refunds the whole charge `reference`; refunding it again is a no-op.
    fn refund<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// The simulated provider's fault mode.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of calls (0 to 1) that fail.
    pub failure_rate: f64,
    /// How long every call takes.
    pub delay: Duration,
}

/// The card provider the system runs with: no network, no money.
#[derive(Debug, Default)]
pub struct SimulatedProvider {
    faults: Faults,
}

/// The method the simulated provider approves.
pub const APPROVED_METHOD: &str = "tok_visa";

impl SimulatedProvider {
    pub fn new(faults: Faults) -> Self {
        Self { faults }
    }

    async fn answer(&self) -> Result<(), ProviderError> {
        if !self.faults.delay.is_zero() {
            tokio::time::sleep(self.faults.delay).await;
        }
        if self.faults.failure_rate > 0.0 && rand::random::<f64>() < self.faults.failure_rate {
            return Err(ProviderError::Failed("simulated outage".into()));
        }
        Ok(())
    }
}

impl CardProvider for SimulatedProvider {
    fn charge<'a>(
        &'a self,
        request: &'a ChargeRequest,
    ) -> BoxFuture<'a, Result<ChargeOutcome, ProviderError>> {
        Box::pin(async move {
            self.answer().await?;
            let reference = format!("sim_ch_{}", request.idempotency_key);
            Ok(if request.payment_method == APPROVED_METHOD {
                ChargeOutcome::Approved { reference }
            } else {
                ChargeOutcome::Declined { reference }
            })
        })
    }

    fn refund<'a>(&'a self, _reference: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(self.answer())
    }
}

/// A provider behind a timeout and a circuit breaker: a provider that fails or hangs
/// fails fast, so events wait in their stream rather than in held connections.
#[derive(Clone)]
pub struct GuardedProvider {
    inner: Arc<dyn CardProvider>,
    breaker: CircuitBreaker,
    timeout: Duration,
}

impl GuardedProvider {
    pub fn new(inner: Arc<dyn CardProvider>, breaker: BreakerConfig, timeout: Duration) -> Self {
        Self {
            inner,
            breaker: CircuitBreaker::new(breaker),
            timeout,
        }
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub async fn charge(&self, request: &ChargeRequest) -> Result<ChargeOutcome, ProviderError> {
        self.guard(self.inner.charge(request)).await
    }

    pub async fn refund(&self, reference: &str) -> Result<(), ProviderError> {
        self.guard(self.inner.refund(reference)).await
    }

    async fn guard<T>(
        &self,
        call: BoxFuture<'_, Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| ProviderError::BreakerOpen)?;
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::TimedOut(self.timeout)),
        };
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        self.breaker.record(permit, outcome, started.elapsed());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_client::ClientSettings;

    fn request(method: &str) -> ChargeRequest {
        ChargeRequest {
            idempotency_key: "order-1".into(),
            amount_cents: 100,
            currency: "USD".into(),
            payment_method: method.into(),
        }
    }

    #[tokio::test]
    async fn tok_visa_is_approved_tok_declined_is_declined_and_a_repeat_is_the_same_charge() {
        let provider = SimulatedProvider::default();
        let approved = provider.charge(&request("tok_visa")).await.unwrap();
        assert_eq!(
            approved,
            ChargeOutcome::Approved {
                reference: "sim_ch_order-1".into()
            }
        );
        assert_eq!(
            provider.charge(&request("tok_visa")).await.unwrap(),
            approved
        );
        assert!(matches!(
            provider.charge(&request("tok_declined")).await.unwrap(),
            ChargeOutcome::Declined { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_opens_the_breaker_and_a_slow_one_times_out() {
        let failing = Arc::new(SimulatedProvider::new(Faults {
            failure_rate: 1.0,
            delay: Duration::ZERO,
        }));
        let settings = ClientSettings::default();
        let guarded = GuardedProvider::new(failing, settings.breaker(), Duration::from_secs(1));
        for _ in 0..settings.http_client_breaker_consecutive_failures {
            assert!(matches!(
                guarded.charge(&request("tok_visa")).await,
                Err(ProviderError::Failed(_))
            ));
        }
        assert!(matches!(
            guarded.charge(&request("tok_visa")).await,
            Err(ProviderError::BreakerOpen)
        ));

        let slow = Arc::new(SimulatedProvider::new(Faults {
            failure_rate: 0.0,
            delay: Duration::from_secs(3),
        }));
        let guarded = GuardedProvider::new(slow, settings.breaker(), Duration::from_secs(1));
        assert!(matches!(
            guarded.charge(&request("tok_visa")).await,
            Err(ProviderError::TimedOut(_))
        ));
    }
}
