//! One wallet, opened with everything around it: its storage, the wallet backend, the buyer's
//! [`Payer`] and the [`Seller`]. Entry points (CLI, MCP server, gateway) start here, through
//! one composition root, [`App::from_config`]: the storage engine (`database_url` or the data
//! dir's SQLite), the backend and the configured budget are decided in this one place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tracing::{info, warn};

use crate::approval::{Approvals, PolicyError};
use crate::budget::{BudgetStatus, DAY_SECS, LimitError};
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::mint::Seller;
use crate::mpp::MppSeller;
use crate::pay::{PayError, Payer};
use crate::storage::{EngineInfo, SpendLedger, Storage, StorageError};
use crate::wallet::embedded::EmbeddedError;
use crate::wallet::{BackendConfig, EmbeddedWallet, Wallet, WalletError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error(transparent)]
    Pay(#[from] PayError),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("[budget]: {0}")]
    Budget(#[from] LimitError),
    #[error("[approval]: {0}")]
    Approval(#[from] PolicyError),
}

/// An opened wallet.
#[derive(Debug)]
pub struct App {
    pub data_dir: PathBuf,
    pub wallet_name: String,
    /// Where everything is kept (SQLite in the data dir, or PostgreSQL shared by instances).
    pub storage: Storage,
    /// The spend ledger of `storage`.
    pub ledger: Arc<dyn SpendLedger>,
    pub wallet: Arc<dyn Wallet>,
    /// Set when the backend is the embedded wallet (deposits are possible).
    pub embedded: Option<Arc<EmbeddedWallet>>,
    pub payer: Arc<Payer>,
    /// Payments held for a human, and the human's decisions.
    pub approvals: Approvals,
    pub seller: Seller,
    /// The seller of the `Payment` scheme (MPP), on the same wallet and storage.
    pub mpp: MppSeller,
    pub clock: SharedClock,
}

/// Balance, budget and earnings of a wallet, as shown to people and agents.
#[derive(Debug, Clone, Serialize)]
pub struct WalletStatus {
    pub wallet: String,
    pub backend: &'static str,
    pub network: crate::bolt11::Network,
    pub balance_msat: u64,
    /// True when the balance is test sats, not real bitcoin.
    pub demo_funds: bool,
    /// False when the backend does not return payment preimages: fetch_paid then refuses to
    /// pay L402 challenges (no credential could be shown).
    pub returns_preimages: bool,
    pub budget: BudgetStatus,
    /// Income settled in the last 24 hours.
    pub earned_24h_msat: u64,
}

impl App {
    /// The composition root: wallet `wallet_name` on the storage, backend and budget `config`
    /// says (`database_url` else the SQLite ledger of `data_dir`; `[backend]` else the embedded
    /// wallet). The configured `[budget]` is applied over the stored one, here and only here.
    pub async fn from_config(
        config: &Config,
        data_dir: &Path,
        wallet_name: &str,
        clock: SharedClock,
    ) -> Result<App, AppError> {
        let backend = config.backend()?;
        let storage = Storage::open(data_dir, config.database_url()).await?;
        let app = Self::open_on(storage, data_dir, wallet_name, &backend, clock).await?;
        app.payer.keep_history(config.history.retention());
        if !config.budget.is_empty() {
            let mut policy = app.ledger.budget(&app.wallet_name).await?;
            config.budget.apply(&mut policy)?;
            app.ledger
                .set_budget(&app.wallet_name, &policy, app.clock.now())
                .await?;
        }
        if !config.approval.is_empty() {
            let mut policy = app.approvals.policy().await?;
            config.approval.apply(&mut policy)?;
            app.approvals.set_policy(&policy).await?;
        }
        Ok(app)
    }

    /// Open wallet `wallet_name` of `data_dir`'s SQLite ledger with the embedded backend
    /// (created on first use), and reconcile payments a previous run left pending.
    pub async fn open_embedded(
        data_dir: &Path,
        wallet_name: &str,
        clock: SharedClock,
    ) -> Result<App, AppError> {
        Self::open(data_dir, wallet_name, &BackendConfig::Embedded, clock).await
    }

    /// Open wallet `wallet_name` of `data_dir`'s SQLite ledger on `backend`.
    pub async fn open(
        data_dir: &Path,
        wallet_name: &str,
        backend: &BackendConfig,
        clock: SharedClock,
    ) -> Result<App, AppError> {
        let storage = Storage::open_sqlite(data_dir).await?;
        Self::open_on(storage, data_dir, wallet_name, backend, clock).await
    }

    /// Open wallet `wallet_name` (the name its ledger entries and budget go under) on
    /// `storage` and `backend`, and reconcile payments left pending (by an earlier run, or by
    /// another instance on shared storage that stopped mid-payment).
    pub async fn open_on(
        storage: Storage,
        data_dir: &Path,
        wallet_name: &str,
        backend: &BackendConfig,
        clock: SharedClock,
    ) -> Result<App, AppError> {
        crate::wallet::embedded::validate_name(wallet_name)?;
        let (wallet, embedded): (Arc<dyn Wallet>, _) = match backend {
            BackendConfig::Embedded => {
                let e = Arc::new(
                    EmbeddedWallet::open(
                        storage.books(),
                        Some(data_dir),
                        wallet_name,
                        clock.clone(),
                    )
                    .await?,
                );
                (e.clone(), Some(e))
            }
            remote => {
                let refs = crate::wallet::RefStore::new(storage.refs(), wallet_name);
                (crate::wallet::open_remote(remote, refs).await?, None)
            }
        };
        let ledger = storage.ledger();
        let payer = Arc::new(
            Payer::new(
                wallet_name,
                wallet.clone(),
                ledger.clone(),
                storage.tokens(),
                clock.clone(),
            )
            .await?
            .with_approvals(storage.approvals()),
        );
        let approvals = Approvals::new(
            payer.clone(),
            storage.approvals(),
            storage.tokens(),
            clock.clone(),
        );
        let mut seller = Seller::new(
            wallet_name,
            wallet.clone(),
            ledger.clone(),
            storage.seller(),
            clock.clone(),
        );
        if let Some(e) = &embedded {
            seller = seller.with_embedded(e.clone());
        }
        let mpp = MppSeller::new(seller.clone(), storage.mpp(), payer.clone());
        let report = payer.reconcile().await?;
        if report.succeeded + report.failed > 0 {
            info!(
                ?report,
                "reconciled payments left pending by an earlier run"
            );
        }
        if report.still_pending > 0 {
            warn!(
                pending = report.still_pending,
                "payments still pending; their budget stays reserved until resolved"
            );
        }
        Ok(App {
            data_dir: data_dir.to_owned(),
            wallet_name: wallet_name.to_owned(),
            storage,
            ledger,
            wallet,
            embedded,
            payer,
            approvals,
            seller,
            mpp,
            clock,
        })
    }

    /// What the storage is (engine, version, where).
    pub fn engine(&self) -> EngineInfo {
        self.storage.info()
    }

    /// Balance, budget and earnings.
    pub async fn status(&self) -> Result<WalletStatus, AppError> {
        let now = self.clock.now();
        // What the wallet says and what the ledger says, asked at the same time. Incoming
        // payments are brought up to date before the earnings are summed.
        let wallet = async { tokio::try_join!(self.wallet.info(), self.wallet.balance()) };
        let ledger = async {
            if let Err(e) = self.seller.refresh_incoming().await {
                warn!(error = %e, "could not refresh incoming payments");
            }
            tokio::try_join!(
                self.ledger.budget_and_use(&self.wallet_name, None, now),
                self.ledger
                    .earned_since(&self.wallet_name, now.saturating_sub(DAY_SECS))
            )
        };
        let (wallet, ledger) = tokio::join!(wallet, ledger);
        let (info, balance) = wallet?;
        let ((policy, used), earned_24h) = ledger?;
        Ok(WalletStatus {
            wallet: self.wallet_name.clone(),
            backend: info.backend,
            network: info.network,
            balance_msat: balance.msat,
            demo_funds: balance.demo_funds,
            returns_preimages: info.returns_preimages && !self.wallet.withholds_preimages(),
            budget: BudgetStatus::new(policy, &used),
            earned_24h_msat: earned_24h.msat(),
        })
    }
}
