//! PKCS#11 key store: the CA's keys on an HSM (SoftHSM2 in development and tests).
//!
//! Keys are generated on the token with CKA_SENSITIVE=true and CKA_EXTRACTABLE=false and found
//! again by CKA_LABEL; the token is found by its label, never by slot number (SoftHSM2 assigns
//! random slot ids). A `cryptoki::Session` is `Send` but not `Sync`, so signing takes a session
//! from a pool for the duration of one call.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use super::{KeyAlgorithm, KeyStore, KeyStoreError, Signer, ecdsa_raw_to_der, p256_spki, rsa_spki};

/// DER of the namedCurve OID prime256v1, as CKA_EC_PARAMS wants it.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

pub struct Pkcs11Config {
    pub module: PathBuf,
    pub token: String,
    pub pin: String,
    pub sessions: usize,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("pin", &"<redacted>")
            .finish()
    }
}

/// The module and the token's slot, as one initialisation of the module knows them; `epoch`
/// counts the initialisations.
struct Link {
    // Kept so the library stays loaded and initialised while sessions live.
    ctx: Pkcs11,
    slot: Slot,
    epoch: u64,
}

/// What logging in again takes, for a token that went away and came back.
struct Again {
    label: String,
    pin: AuthPin,
    /// The last attempt: while the token is away, one attempt a second is enough.
    last: Mutex<Option<std::time::Instant>>,
}

/// Sessions on one token, shared by every key on it.
pub struct SessionPool {
    /// Read-held for every call on a session, write-held by [`SessionPool::reconnect`]: the
    /// module is finalised only when no call is in flight, since finalising under another
    /// thread's C_Sign or C_OpenSession leaves that thread waiting for ever (seen with SoftHSM2
    /// when a pair's two signatures failed at once).
    link: RwLock<Link>,
    idle: Mutex<Vec<(u64, Session)>>,
    max_idle: usize,
    /// Only the service's CA key store reconnects: finalising the module ends every session
    /// of the process, and a workstation has the operator's token and a card on one module.
    again: Option<Again>,
}

impl SessionPool {
    fn take(&self, link: &Link) -> Result<(u64, Session), KeyStoreError> {
        let (ctx, slot, epoch) = (&link.ctx, link.slot, link.epoch);
        let mut idle = self.idle.lock().map_err(|_| poisoned())?;
        while let Some((e, s)) = idle.pop() {
            if e == epoch {
                return Ok((e, s));
            }
            std::mem::forget(s);
        }
        drop(idle);
        // Login state is per application in PKCS#11: a new session of a logged-in
        // application is logged in too.
        Ok((epoch, ctx.open_rw_session(slot)?))
    }

    /// Keeps a session that worked; closes one that failed. A session of an earlier
    /// initialisation is forgotten, never closed: its handle may name a session of this one.
    fn settle(&self, link: &Link, epoch: u64, s: Session, worked: bool) {
        if epoch != link.epoch {
            std::mem::forget(s);
            return;
        }
        if worked
            && let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push((epoch, s));
        }
    }

    /// Runs `f` with a pooled session; a session that failed is dropped (closed), not reused.
    pub fn with<T>(&self, f: impl FnOnce(&Session) -> Result<T, KeyStoreError>) -> Result<T, KeyStoreError> {
        let link = self.link.read().map_err(|_| poisoned())?;
        let (epoch, s) = self.take(&link)?;
        let r = f(&s);
        self.settle(&link, epoch, s, r.is_ok());
        r
    }

    /// Initialises the module again, finds the token by label and logs in: what a token that
    /// was unplugged (or whose store went away) needs once it is back, since a module may never
    /// look for it again otherwise (SoftHSM2 does not). False when this pool does not reconnect
    /// or tried less than a second ago.
    fn reconnect(&self) -> Result<bool, KeyStoreError> {
        let Some(again) = &self.again else {
            return Ok(false);
        };
        {
            let mut last = again.last.lock().map_err(|_| poisoned())?;
            if last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(1)) {
                return Ok(false);
            }
            *last = Some(std::time::Instant::now());
        }
        let mut link = self.link.write().map_err(|_| poisoned())?;
        for (_, s) in self.idle.lock().map_err(|_| poisoned())?.drain(..) {
            std::mem::forget(s);
        }
        // No session is out with another thread now (each call holds the read lock); the epoch
        // still marks the idle ones as of the old initialisation.
        link.epoch += 1;
        let _ = link.ctx.clone().finalize();
        match link
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e.into()),
        }
        link.slot = find_token(&link.ctx, &again.label)?;
        let session = link.ctx.open_rw_session(link.slot)?;
        match session.login(UserType::User, Some(&again.pin)) {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(e.into()),
        }
        self.idle.lock().map_err(|_| poisoned())?.push((link.epoch, session));
        tracing::warn!(token = %again.label, "PKCS#11 module initialised again and logged in to the token");
        Ok(true)
    }
}

fn poisoned() -> KeyStoreError {
    KeyStoreError::Pkcs11("session pool lock poisoned".into())
}

pub struct Pkcs11Store {
    pool: Arc<SessionPool>,
}

impl Pkcs11Store {
    pub fn open(cfg: Pkcs11Config) -> Result<Self, KeyStoreError> {
        let sessions = cfg.sessions;
        Pkcs11Token::find(&cfg.module, &cfg.token)?.login(&AuthPin::from(cfg.pin), sessions)
    }

    /// The service's CA key store: as [`Self::open`], and when the token fails under a key
    /// (unplugged, its store gone) the module is initialised again and the token logged in to
    /// again, so that signing resumes by itself once the token is back. The PIN stays in
    /// memory for that, as it does in the configuration.
    pub fn open_reconnecting(cfg: Pkcs11Config) -> Result<Self, KeyStoreError> {
        let (label, pin) = (cfg.token.clone(), cfg.pin.clone());
        let mut store = Self::open(cfg)?;
        let pool = Arc::get_mut(&mut store.pool).ok_or_else(poisoned)?;
        pool.again = Some(Again {
            label,
            pin: AuthPin::from(pin),
            last: Mutex::new(None),
        });
        Ok(store)
    }
}

/// What a token's flags say about its user PIN before a try: a token that counts wrong tries
/// sets these (CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinTries {
    pub count_low: bool,
    pub final_try: bool,
    pub locked: bool,
}

/// A token found in its slot and not logged into yet: its PIN state and free memory can be read
/// before a PIN is tried (a wrong try costs one of the few an ID card allows).
pub struct Pkcs11Token {
    ctx: Pkcs11,
    slot: Slot,
}

impl Pkcs11Token {
    /// Loads the module and finds the token by label.
    pub fn find(module: &std::path::Path, label: &str) -> Result<Self, KeyStoreError> {
        let mut reloads = 0;
        loop {
            let ctx =
                Pkcs11::new(module).map_err(|e| KeyStoreError::Pkcs11(format!("loading {}: {e}", module.display())))?;
            // One process may open several tokens of the same module (the CA's HSM and an
            // operator's token, or an operator's token and an ID card at a workstation): the
            // module is initialised once, and that is not an error.
            let fresh = match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
                Ok(()) => true,
                Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::CryptokiAlreadyInitialized, _)) => false,
                Err(e) => return Err(e.into()),
            };
            match find_slot(&ctx, label) {
                // SoftHSM2 reads its token files when the module is initialised and passes over
                // one that another process is rewriting at that moment: the token seems absent.
                // Initialising again reads them again. Only a context this call initialised is
                // finalised: another token of the process may be open on a shared one.
                Err(KeyStoreError::TokenNotFound(_)) if fresh && reloads < 3 => {
                    reloads += 1;
                    let _ = ctx.finalize();
                    std::thread::sleep(std::time::Duration::from_millis(150 * reloads));
                }
                r => return r.map(|slot| Pkcs11Token { ctx, slot }),
            }
        }
    }

    /// The user PIN's state from the token's flags, read fresh.
    pub fn pin_tries(&self) -> Result<PinTries, KeyStoreError> {
        let info = self.ctx.get_token_info(self.slot)?;
        Ok(PinTries {
            count_low: info.user_pin_count_low(),
            final_try: info.user_pin_final_try(),
            locked: info.user_pin_locked(),
        })
    }

    /// Free memory for private objects in bytes, when the token reports it (SoftHSM2 does not).
    pub fn free_private_memory(&self) -> Result<Option<usize>, KeyStoreError> {
        Ok(self.ctx.get_token_info(self.slot)?.free_private_memory())
    }

    /// Logs in as the user; `PinIncorrect` or `PinLocked` when the token refuses.
    pub fn login(&self, pin: &AuthPin, sessions: usize) -> Result<Pkcs11Store, KeyStoreError> {
        let session = self.ctx.open_rw_session(self.slot)?;
        match session.login(UserType::User, Some(pin)) {
            Ok(()) => {}
            Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(e.into()),
        }
        let pool = SessionPool {
            link: RwLock::new(Link {
                ctx: self.ctx.clone(),
                slot: self.slot,
                epoch: 0,
            }),
            idle: Mutex::new(vec![(0, session)]),
            max_idle: sessions.max(1),
            again: None,
        };
        Ok(Pkcs11Store { pool: Arc::new(pool) })
    }
}

impl Pkcs11Store {
    /// Writes a certificate onto the token beside the private key labelled `key_label`: a
    /// CKO_CERTIFICATE with the key's CKA_ID and label, so that software which pairs keys and
    /// certificates by CKA_ID (NCALayer, pkcs11-tool, browsers) finds them together.
    pub fn put_certificate(&self, key_label: &str, cert_der: &[u8]) -> Result<(), KeyStoreError> {
        let cert: x509_cert::Certificate =
            der::Decode::from_der(cert_der).map_err(|e| KeyStoreError::Pkcs11(format!("certificate: {e}")))?;
        let enc = |r: der::Result<Vec<u8>>| r.map_err(|e| KeyStoreError::Pkcs11(e.to_string()));
        let subject = enc(der::Encode::to_der(&cert.tbs_certificate.subject))?;
        let issuer = enc(der::Encode::to_der(&cert.tbs_certificate.issuer))?;
        let serial = enc(der::Encode::to_der(&cert.tbs_certificate.serial_number))?;
        self.pool.with(|s| {
            let id =
                key_id(s, key_label)?.ok_or_else(|| KeyStoreError::Pkcs11(format!("{key_label} has no CKA_ID")))?;
            s.create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(cryptoki::object::CertificateType::X_509),
                Attribute::Token(true),
                Attribute::Private(false),
                Attribute::Id(id),
                Attribute::Label(key_label.as_bytes().to_vec()),
                Attribute::Subject(subject),
                Attribute::Issuer(issuer),
                Attribute::SerialNumber(serial),
                Attribute::Value(cert_der.to_vec()),
            ])?;
            Ok(())
        })
    }

    /// The certificate paired with the private key `label` by CKA_ID, as software that reads
    /// the token pairs them (the label is only a name); `None` when there is none.
    pub fn certificate_of_key(&self, key_label: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        self.pool.with(|s| {
            let Some(id) = key_id(s, key_label)? else {
                return Ok(None);
            };
            let found = s.find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE), Attribute::Id(id)])?;
            let Some(obj) = found.first() else { return Ok(None) };
            match s.get_attributes(*obj, &[AttributeType::Value])?.into_iter().next() {
                Some(Attribute::Value(v)) => Ok(Some(v)),
                _ => Ok(None),
            }
        })
    }

    /// Destroys every object labelled `label`: the private and public key and a certificate
    /// beside them. Returns how many there were.
    pub fn destroy(&self, label: &str) -> Result<usize, KeyStoreError> {
        self.pool.with(|s| {
            let found = s.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])?;
            for o in &found {
                s.destroy_object(*o)?;
            }
            Ok(found.len())
        })
    }

    /// The certificate stored beside the key `label`, if any.
    pub fn certificate(&self, label: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
        self.pool.with(|s| {
            let found = s.find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Label(label.as_bytes().to_vec()),
            ])?;
            let Some(obj) = found.first() else { return Ok(None) };
            match s.get_attributes(*obj, &[AttributeType::Value])?.into_iter().next() {
                Some(Attribute::Value(v)) => Ok(Some(v)),
                _ => Ok(None),
            }
        })
    }

    /// Labels of the private keys whose label starts with `prefix`, sorted.
    pub fn key_labels(&self, prefix: &str) -> Result<Vec<String>, KeyStoreError> {
        self.pool.with(|s| {
            let mut labels = Vec::new();
            for k in s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])? {
                if let Some(Attribute::Label(l)) = s.get_attributes(k, &[AttributeType::Label])?.into_iter().next() {
                    let l = String::from_utf8_lossy(&l).into_owned();
                    if l.starts_with(prefix) {
                        labels.push(l);
                    }
                }
            }
            labels.sort();
            Ok(labels)
        })
    }
}

/// Finds the slot holding the token with this label (labels are blank-padded on the token).
/// The CKA_ID of the one private key labelled `label` (what pairs it with its certificate).
fn key_id(s: &Session, label: &str) -> Result<Option<Vec<u8>>, KeyStoreError> {
    let key = match s.find_objects(&private_key_template(label))?.as_slice() {
        [k] => *k,
        _ => return Err(KeyStoreError::KeyNotFound(label.to_string())),
    };
    Ok(match s.get_attributes(key, &[AttributeType::Id])?.into_iter().next() {
        Some(Attribute::Id(id)) => Some(id),
        _ => None,
    })
}

/// The token's slot, riding out CKR_GENERAL_ERROR: SoftHSM2 keeps tokens in files, and while
/// another process rewrites them reading the token list can fail. An absent token fails at once.
fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot, KeyStoreError> {
    let mut tries = 0;
    loop {
        match find_token(ctx, label) {
            Err(KeyStoreError::Pkcs11(e)) if tries < 5 => {
                tries += 1;
                tracing::warn!("PKCS#11 token list: {e}; retrying");
                std::thread::sleep(std::time::Duration::from_millis(100 * tries));
            }
            r => return r,
        }
    }
}

pub fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, KeyStoreError> {
    for slot in ctx.get_slots_with_token()? {
        if ctx.get_token_info(slot)?.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(KeyStoreError::TokenNotFound(label.to_string()))
}

fn private_key_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

impl KeyStore for Pkcs11Store {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, KeyStoreError> {
        self.pool.with(|s| {
            if !s.find_objects(&private_key_template(label))?.is_empty() {
                return Err(KeyStoreError::KeyExists(label.to_string()));
            }
            Ok(())
        })?;
        let id = {
            let mut id = vec![0u8; 16];
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut id)
                .map_err(|_| KeyStoreError::Pkcs11("no randomness for CKA_ID".into()))?;
            id
        };
        let label_bytes = label.as_bytes().to_vec();
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Id(id.clone()),
            Attribute::Label(label_bytes.clone()),
        ];
        let private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            // A CA key signs and does nothing else (SoftHSM2 would default to decrypt, unwrap).
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Id(id),
            Attribute::Label(label_bytes),
        ];
        let mechanism = match alg {
            KeyAlgorithm::EcP256 => {
                public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => {
                public.push(Attribute::ModulusBits((alg.rsa_bits().unwrap_or(2048) as u64).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        self.pool.with(|s| {
            s.generate_key_pair(&mechanism, &public, &private)
                .map(|_| ())
                .map_err(Into::into)
        })?;
        self.open(label)
    }

    fn open(&self, label: &str) -> Result<Arc<dyn Signer>, KeyStoreError> {
        let (key, alg, spki) = self.pool.with(|s| {
            let key = private_key(s, label)?;
            let public = s.find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])?;
            let public = *public
                .first()
                .ok_or_else(|| KeyStoreError::KeyNotFound(format!("{label} (public)")))?;
            let (alg, spki) = public_key_of(s, public)?;
            Ok((key, alg, spki))
        })?;
        Ok(Arc::new(Pkcs11Key {
            label: label.to_string(),
            alg,
            spki,
            key: Mutex::new(key),
            pool: Arc::clone(&self.pool),
        }))
    }

    fn check(&self) -> Result<(), KeyStoreError> {
        self.pool.with(|s| s.get_session_info().map(|_| ()).map_err(Into::into))
    }
}

/// The one private key with this label.
fn private_key(s: &Session, label: &str) -> Result<ObjectHandle, KeyStoreError> {
    let found = s.find_objects(&private_key_template(label))?;
    match found.as_slice() {
        [k] => Ok(*k),
        [] => Err(KeyStoreError::KeyNotFound(label.to_string())),
        _ => Err(KeyStoreError::Pkcs11(format!(
            "{} private keys labelled {label:?}",
            found.len()
        ))),
    }
}

/// Reads a public key object back as an SPKI.
fn public_key_of(s: &Session, public: ObjectHandle) -> Result<(KeyAlgorithm, Vec<u8>), KeyStoreError> {
    let attrs = s.get_attributes(public, &[AttributeType::KeyType])?;
    let key_type = match attrs.first() {
        Some(Attribute::KeyType(t)) => *t,
        _ => {
            return Err(KeyStoreError::Pkcs11("public key without CKA_KEY_TYPE".into()));
        }
    };
    if key_type == KeyType::RSA {
        let attrs = s.get_attributes(public, &[AttributeType::Modulus, AttributeType::PublicExponent])?;
        let (mut n, mut e) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(v) => n = Some(v),
                Attribute::PublicExponent(v) => e = Some(v),
                _ => {}
            }
        }
        let (n, e) = n
            .zip(e)
            .ok_or_else(|| KeyStoreError::Pkcs11("RSA public key without modulus".into()))?;
        let pkcs1 = rsa_public_key_der(&n, &e)?;
        let bits = super::rsa_modulus_bits(&pkcs1).unwrap_or(0);
        let alg = if bits >= 4096 {
            KeyAlgorithm::Rsa4096
        } else {
            KeyAlgorithm::Rsa2048
        };
        Ok((alg, rsa_spki(&pkcs1)?))
    } else if key_type == KeyType::EC {
        let attrs = s.get_attributes(public, &[AttributeType::EcPoint])?;
        let point = match attrs.into_iter().next() {
            Some(Attribute::EcPoint(p)) => p,
            _ => {
                return Err(KeyStoreError::Pkcs11("EC public key without CKA_EC_POINT".into()));
            }
        };
        // CKA_EC_POINT is a DER OCTET STRING around the point (04 41 04 …).
        let point = match der::asn1::OctetString::from_der(&point) {
            Ok(os) => os.as_bytes().to_vec(),
            Err(_) => point,
        };
        Ok((KeyAlgorithm::EcP256, p256_spki(&point)?))
    } else {
        Err(KeyStoreError::UnsupportedAlgorithm(format!(
            "PKCS#11 key type {key_type}"
        )))
    }
}

use der::Decode;

fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        public_exponent: der::asn1::UintRef<'a>,
    }
    let k = RsaPublicKey {
        modulus: der::asn1::UintRef::new(n).map_err(|e| KeyStoreError::Pkcs11(e.to_string()))?,
        public_exponent: der::asn1::UintRef::new(e).map_err(|e| KeyStoreError::Pkcs11(e.to_string()))?,
    };
    der::Encode::to_der(&k).map_err(|e| KeyStoreError::Pkcs11(e.to_string()))
}

/// A private key on the token, used through the pool.
pub struct Pkcs11Key {
    label: String,
    alg: KeyAlgorithm,
    spki: Vec<u8>,
    /// The key's handle, found again by its label when the token says it is stale.
    key: Mutex<ObjectHandle>,
    pool: Arc<SessionPool>,
}

impl Pkcs11Key {
    /// Runs `f` with a session and the key's handle. When the token fails under it (unplugged,
    /// its store gone, and perhaps back), the pool reconnects, the key is looked up again by
    /// label, and `f` is tried once more; while the token is still away that fails and the key
    /// store is unavailable.
    fn with_key<T>(
        &self,
        f: impl Fn(&Session, ObjectHandle) -> Result<T, cryptoki::error::Error>,
    ) -> Result<T, KeyStoreError> {
        let key = *self.key.lock().map_err(|_| poisoned())?;
        let first = self.pool.with(|s| Ok(f(s, key)?));
        if first.is_ok() || !self.pool.reconnect()? {
            return first;
        }
        let fresh = self.pool.with(|s| private_key(s, &self.label))?;
        *self.key.lock().map_err(|_| poisoned())? = fresh;
        self.pool.with(|s| Ok(f(s, fresh)?))
    }
}

impl Signer for Pkcs11Key {
    fn label(&self) -> &str {
        &self.label
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn sign_blocking(&self, msg: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        match self.alg {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => {
                self.with_key(|s, key| s.sign(&Mechanism::Sha256RsaPkcs, key, msg))
            }
            KeyAlgorithm::EcP256 => {
                // SoftHSM2 has CKM_ECDSA but not CKM_ECDSA_SHA256: hash here, sign the digest.
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
                let raw = self.with_key(|s, key| s.sign(&Mechanism::Ecdsa, key, digest.as_ref()))?;
                ecdsa_raw_to_der(&raw)
            }
        }
    }

    fn sign_rsa_pss_blocking(&self, msg: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        if !self.alg.is_rsa() {
            return Err(KeyStoreError::UnsupportedAlgorithm(format!(
                "RSA-PSS with {}",
                self.alg
            )));
        }
        let params = PkcsPssParams {
            hash_alg: MechanismType::SHA256,
            mgf: PkcsMgfType::MGF1_SHA256,
            s_len: 32.into(),
        };
        self.with_key(|s, key| s.sign(&Mechanism::Sha256RsaPkcsPss(params), key, msg))
    }
}
