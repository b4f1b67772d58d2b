//! Registration centres as data (`ca-config/centres.toml`): regions, localities, centres, with
//! names in Kazakh, Russian and English.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub const EMBEDDED: &str = include_str!("../../ca-config/centres.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    pub kk: String,
    pub ru: String,
    pub en: String,
}

impl Names {
    /// The name in `lang` (`kk`, `ru`, `en`); Kazakh for any other.
    pub fn get(&self, lang: &str) -> &str {
        match lang {
            "ru" => &self.ru,
            "en" => &self.en,
            _ => &self.kk,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Centre {
    pub id: String,
    pub names: Names,
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    pub id: String,
    pub names: Names,
    pub centres: Vec<Centre>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub id: String,
    pub names: Names,
    pub localities: Vec<Locality>,
}

/// The whole directory; serialises to the shape `GET /api/v1/centres` answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Centres {
    pub regions: Vec<Region>,
}

/// A centres file that does not parse or repeats an id.
#[derive(Debug, thiserror::Error)]
#[error("centres: {0}")]
pub struct CentresError(pub String);

impl Centres {
    pub fn parse(text: &str) -> Result<Centres, CentresError> {
        let c: Centres = toml::from_str(text).map_err(|e| CentresError(e.to_string()))?;
        let mut ids = HashSet::new();
        for r in &c.regions {
            for id in std::iter::once(&r.id)
                .chain(r.localities.iter().map(|l| &l.id))
                .chain(r.localities.iter().flat_map(|l| l.centres.iter().map(|c| &c.id)))
            {
                if !ids.insert(id.clone()) {
                    return Err(CentresError(format!("id {id:?} appears twice")));
                }
            }
        }
        Ok(c)
    }

    /// The centres file the configuration names, or the built-in copy.
    pub fn load(cfg: &crate::config::Config) -> Result<Centres, CentresError> {
        let text =
            crate::config::read_data_file(&cfg.centres.file, EMBEDDED).map_err(|e| CentresError(e.to_string()))?;
        Centres::parse(&text)
    }

    pub fn centre(&self, id: &str) -> Option<&Centre> {
        self.regions
            .iter()
            .flat_map(|r| &r.localities)
            .flat_map(|l| &l.centres)
            .find(|c| c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_centres_parse() {
        let c = Centres::parse(EMBEDDED).unwrap();
        assert!(!c.regions.is_empty());
        let first = &c.regions[0].localities[0].centres[0];
        assert!(c.centre(&first.id).is_some());
        assert!(Centres::parse("[[regions]]\nid='a'\nnames={kk='',ru='',en=''}\nlocalities=[{id='a',names={kk='',ru='',en=''},centres=[]}]").is_err());
    }
}
