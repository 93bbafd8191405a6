//! The run configuration, as written in TOML by the user.
//!
//! Config structs are plain serde data (`deny_unknown_fields` everywhere, so a typo is an error,
//! not a silently ignored key). They are turned into runtime objects by
//! [`Config::build_stages`], which compiles regexes, loads term lists and models *before any
//! document is read*: every config error is reported up front with the key that caused it. The
//! stage tables themselves are [`StageConfig`], generated from the stage registry in
//! `stages/mod.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_io::Compression;

use crate::error::ConfigError;
use crate::stage::BuildContext;
use crate::stages::Stage;
pub use crate::stages::StageConfig;

/// The whole file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub input: InputConfig,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub run: RunConfig,
    /// The cascade, in order. Each stage is tagged by `type`.
    #[serde(default)]
    pub stages: Vec<StageConfig>,
    /// Directory of the config file: relative paths inside stages (term lists) resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Shards: files, directories or glob patterns, relative to the working directory.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Field holding the document text; dots descend into nested objects (`metadata.body`).
    #[serde(default = "default_text_field")]
    pub text_field: String,
    /// A record layout that sets the text sources and their roles: `chat`, `sharegpt`,
    /// `alpaca`, `prompt-completion` (`text`: the one `text_field`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<crate::document::InputFormat>,
    /// Several text sources, judged as one document of parts (`["messages[*].content"]`,
    /// `["instruction", "input", "output"]`, tables `{path, role, role_field}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_fields: Vec<crate::document::TextSource>,
    /// Field holding the document id (string or number); documents without one are identified
    /// by shard and line number.
    #[serde(default)]
    pub id_field: Option<String>,
    /// Lines longer than this go to `errors/` without being buffered whole.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Follow symbolic links to directories inside input directories (with loop detection).
    #[serde(default, skip_serializing_if = "is_false")]
    pub follow_symlinks: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputCompression {
    /// Each output shard is compressed like its input shard.
    Same,
    None,
    Zstd,
    Gzip,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditScope {
    /// Audit documents some stage dropped, escalated or tagged.
    Flagged,
    /// Also audit documents with evidence below a stage's thresholds (for re-thresholding).
    Matched,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Output directory, relative to the working directory.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default = "default_compression")]
    pub compression: OutputCompression,
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    #[serde(default = "default_gzip_level")]
    pub gzip_level: i32,
    /// Spans recorded per stage per document in audit records (the total is always recorded).
    #[serde(default = "default_max_spans")]
    pub max_spans: usize,
    #[serde(default = "default_audit_scope")]
    pub audit: AuditScope,
    /// How the kept/dropped/review outputs of a Parquet shard are written (`[output.parquet]`).
    #[serde(default, skip_serializing_if = "ParquetOutputConfig::is_default")]
    pub parquet: ParquetOutputConfig,
}

/// The codec inside Parquet outputs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    None,
    Snappy,
    Zstd,
    Gzip,
    Lz4,
}

/// `[output.parquet]`: Parquet outputs. Their `audit/` and `errors/` records stay JSONL,
/// compressed as `output.compression` says (`same`: zstd).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParquetOutputConfig {
    #[serde(default = "default_parquet_compression")]
    pub compression: ParquetCompression,
    /// The zstd or gzip level inside the file; unset: 1 for zstd (fast, and Parquet's own
    /// encodings do much of the work), `output.gzip_level` for gzip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    /// Rows per row group, at most.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Encoded (compressed) bytes per row group, about, at most. While a row group is written,
    /// the writer holds about its uncompressed size, per output.
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: usize,
}

fn default_parquet_compression() -> ParquetCompression {
    ParquetCompression::Zstd
}
fn default_row_group_rows() -> usize {
    1 << 20
}
fn default_row_group_bytes() -> usize {
    32 << 20
}

impl Default for ParquetOutputConfig {
    fn default() -> Self {
        ParquetOutputConfig {
            compression: default_parquet_compression(),
            level: None,
            row_group_rows: default_row_group_rows(),
            row_group_bytes: default_row_group_bytes(),
        }
    }
}

impl ParquetOutputConfig {
    fn is_default(&self) -> bool {
        *self == ParquetOutputConfig::default()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Worker threads; 0 means one per core.
    #[serde(default)]
    pub threads: usize,
    /// Uncompressed bytes per chunk: the unit of parallel work and of output compression frames.
    #[serde(default = "default_chunk_bytes")]
    pub chunk_bytes: usize,
    /// Batched stages (a model) gather up to this many documents from several chunks into one
    /// call; 0 (the default) keeps calls per chunk. See `pipeline/gather.rs`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gather_documents: usize,
    /// How long a gathered request waits for others, at most.
    #[serde(
        default = "default_gather_wait_ms",
        skip_serializing_if = "is_default_gather_wait"
    )]
    pub gather_wait_ms: u64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
fn default_gather_wait_ms() -> u64 {
    10
}
fn is_default_gather_wait(ms: &u64) -> bool {
    *ms == default_gather_wait_ms()
}

/// Worker threads at most (`-j`, `run.threads`).
pub const MAX_THREADS: usize = 1024;

/// Stages in one cascade at most (a verdict records the stages it reached as bits of a `u64`).
pub const MAX_STAGES: usize = 64;

fn default_text_field() -> String {
    "text".into()
}
fn default_max_line_bytes() -> usize {
    32 << 20
}
fn default_compression() -> OutputCompression {
    OutputCompression::Same
}
fn default_zstd_level() -> i32 {
    3
}
fn default_gzip_level() -> i32 {
    6
}
fn default_max_spans() -> usize {
    32
}
fn default_audit_scope() -> AuditScope {
    AuditScope::Flagged
}
fn default_chunk_bytes() -> usize {
    4 << 20
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            paths: Vec::new(),
            text_field: default_text_field(),
            format: None,
            text_fields: Vec::new(),
            id_field: None,
            max_line_bytes: default_max_line_bytes(),
            follow_symlinks: false,
        }
    }
}
impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: None,
            compression: default_compression(),
            zstd_level: default_zstd_level(),
            gzip_level: default_gzip_level(),
            max_spans: default_max_spans(),
            audit: default_audit_scope(),
            parquet: ParquetOutputConfig::default(),
        }
    }
}
impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            threads: 0,
            chunk_bytes: default_chunk_bytes(),
            gather_documents: 0,
            gather_wait_ms: default_gather_wait_ms(),
        }
    }
}

impl Config {
    /// Reads and parses a config file; relative stage paths will resolve against its directory.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::from_toml(&text, &base_dir).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.base_dir = base_dir.to_path_buf();
        for (i, stage) in config.stages.iter_mut().enumerate() {
            let key = format!("stages[{i}] ({})", stage.id());
            stage.read_files(base_dir, &key)?;
        }
        Ok(config)
    }

    /// The text sources of `input.format` or `input.text_fields`; `None` for the one
    /// `input.text_field`.
    pub fn text_sources(&self) -> Result<Option<Vec<crate::document::TextSource>>, ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_string(),
            message: message.to_string(),
        };
        let preset = self.input.format.and_then(|f| f.sources());
        let sources = match (preset, self.input.text_fields.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "input.text_fields",
                    "give input.format or input.text_fields, not both",
                ))
            }
            (Some(preset), true) => preset,
            (None, false) => self.input.text_fields.clone(),
            (None, true) => return Ok(None),
        };
        if self.input.text_field != default_text_field() {
            return Err(invalid(
                "input.text_field",
                "the text comes from input.format or input.text_fields: leave text_field out",
            ));
        }
        Ok(Some(sources))
    }

    /// The field extractor of `[input]`.
    pub fn extractor(&self) -> Result<crate::document::FieldExtractor, ConfigError> {
        use crate::document::FieldExtractor;
        let id = self.input.id_field.as_deref();
        match self.text_sources()? {
            None => Ok(FieldExtractor::new(&self.input.text_field, id)),
            Some(sources) => {
                FieldExtractor::with_sources(&sources, id).map_err(|message| ConfigError::Invalid {
                    key: if self.input.text_fields.is_empty() {
                        "input.format".into()
                    } else {
                        "input.text_fields".into()
                    },
                    message,
                })
            }
        }
    }

    /// The fields of `[input]` as a Parquet shard's rows are read (the same sources as
    /// [`extractor`](Self::extractor)).
    pub fn row_fields(&self) -> Result<crate::rows::RowFields, ConfigError> {
        use crate::rows::RowFields;
        let id = self.input.id_field.as_deref();
        match self.text_sources()? {
            None => Ok(RowFields::new(&self.input.text_field, id)),
            Some(sources) => {
                RowFields::with_sources(&sources, id).map_err(|message| ConfigError::Invalid {
                    key: if self.input.text_fields.is_empty() {
                        "input.format".into()
                    } else {
                        "input.text_fields".into()
                    },
                    message,
                })
            }
        }
    }

    /// Checks what can be checked without building stages.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            key: key.to_string(),
            message: message.to_string(),
        };
        if self.input.text_field.split('.').any(str::is_empty) {
            return Err(invalid(
                "input.text_field",
                "must be a non-empty dotted field path",
            ));
        }
        if let Some(id) = &self.input.id_field {
            if id.split('.').any(str::is_empty) {
                return Err(invalid(
                    "input.id_field",
                    "must be a non-empty dotted field path",
                ));
            }
        }
        use sluice_io::{MAX_CHUNK_BYTES, MAX_LINE_BYTES, MIN_CHUNK_BYTES, MIN_LINE_BYTES};
        if !(MIN_LINE_BYTES..=MAX_LINE_BYTES).contains(&self.input.max_line_bytes) {
            return Err(invalid(
                "input.max_line_bytes",
                &format!("must be between {MIN_LINE_BYTES} and {MAX_LINE_BYTES}"),
            ));
        }
        if !(1..=22).contains(&self.output.zstd_level) {
            return Err(invalid("output.zstd_level", "must be between 1 and 22"));
        }
        if !(0..=9).contains(&self.output.gzip_level) {
            return Err(invalid("output.gzip_level", "must be between 0 and 9"));
        }
        let parquet = &self.output.parquet;
        match (parquet.compression, parquet.level) {
            (ParquetCompression::Zstd, Some(level)) if !(1..=22).contains(&level) => {
                return Err(invalid(
                    "output.parquet.level",
                    "must be between 1 and 22 for zstd",
                ))
            }
            (ParquetCompression::Gzip, Some(level)) if !(0..=9).contains(&level) => {
                return Err(invalid(
                    "output.parquet.level",
                    "must be between 0 and 9 for gzip",
                ))
            }
            (
                ParquetCompression::None | ParquetCompression::Snappy | ParquetCompression::Lz4,
                Some(_),
            ) => return Err(invalid("output.parquet.level", "is only for zstd and gzip")),
            _ => {}
        }
        if !(1..=1 << 30).contains(&parquet.row_group_rows) {
            return Err(invalid(
                "output.parquet.row_group_rows",
                "must be between 1 and 1073741824",
            ));
        }
        if !(1 << 16..=1 << 30).contains(&parquet.row_group_bytes) {
            return Err(invalid(
                "output.parquet.row_group_bytes",
                "must be between 65536 and 1073741824 (1 GiB)",
            ));
        }
        // Bounded so that the memory promise holds for every accepted value: at least 4 chunks
        // are in flight, each held about five times over (its outputs, its frames).
        if !(MIN_CHUNK_BYTES..=MAX_CHUNK_BYTES).contains(&self.run.chunk_bytes) {
            return Err(invalid(
                "run.chunk_bytes",
                &format!("must be between {MIN_CHUNK_BYTES} and {MAX_CHUNK_BYTES}"),
            ));
        }
        if self.run.threads > MAX_THREADS {
            return Err(invalid(
                "run.threads",
                &format!("must be at most {MAX_THREADS} (0: one per core)"),
            ));
        }
        if self.run.gather_documents > 1 << 16 {
            return Err(invalid("run.gather_documents", "must be at most 65536"));
        }
        if self.run.gather_wait_ms > 60_000 {
            return Err(invalid(
                "run.gather_wait_ms",
                "must be at most 60000 (a minute)",
            ));
        }
        if self.stages.len() > MAX_STAGES {
            return Err(invalid(
                "stages",
                &format!(
                    "at most {MAX_STAGES} stages (there are {})",
                    self.stages.len()
                ),
            ));
        }
        let has_roles = self.extractor()?.has_roles();
        let mut seen = BTreeMap::new();
        for (i, stage) in self.stages.iter().enumerate() {
            if !stage.roles().is_empty() && !has_roles {
                return Err(invalid(
                    &format!("stages[{i}].roles"),
                    "the input's parts have no roles: set input.format (chat, sharegpt, alpaca, \
                     prompt-completion) or a role or role_field in input.text_fields",
                ));
            }
            if stage.roles().iter().any(|r| r.is_empty()) {
                return Err(invalid(
                    &format!("stages[{i}].roles"),
                    "a role must not be empty",
                ));
            }
            if stage.id().is_empty() {
                return Err(invalid(&format!("stages[{i}].id"), "must not be empty"));
            }
            if let Some(first) = seen.insert(stage.id().to_string(), i) {
                return Err(invalid(
                    &format!("stages[{i}].id"),
                    &format!("`{}` is already used by stages[{first}]", stage.id()),
                ));
            }
            // Suppression reads what earlier stages decided: a later stage has not decided yet.
            for (key, ids) in [("unless", stage.unless()), ("only_if", stage.only_if())] {
                if let Some(other) = ids
                    .iter()
                    .find(|other| *other == stage.id() || !seen.contains_key(*other))
                {
                    return Err(invalid(
                        &format!("stages[{i}].{key}"),
                        &format!("`{other}` is not the id of an earlier stage"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn context(&self, index: usize) -> BuildContext<'_> {
        BuildContext {
            base_dir: &self.base_dir,
            max_spans: self.output.max_spans,
            key: format!("stages[{index}] ({})", self.stages[index].id()),
        }
    }

    /// Builds every stage, in order. Fails before any work starts, naming the offending key.
    pub fn build_stages(&self) -> Result<Vec<Stage>, ConfigError> {
        self.validate()?;
        (0..self.stages.len())
            .map(|i| self.stages[i].build(&self.context(i)))
            .collect()
    }

    /// Sets the device of every stage that runs a model (the `--device` flag).
    pub fn set_device(&mut self, device: &str) {
        for stage in &mut self.stages {
            stage.set_device(device);
        }
    }

    /// Output compression of a shard whose input was `input`.
    pub fn output_compression(&self, input: Compression) -> Compression {
        match self.output.compression {
            OutputCompression::Same => input,
            OutputCompression::None => Compression::None,
            OutputCompression::Zstd => Compression::Zstd,
            OutputCompression::Gzip => Compression::Gzip,
        }
    }

    /// Compression of the `audit/` and `errors/` records of a Parquet shard (`same`: zstd).
    pub fn parquet_records_compression(&self) -> Compression {
        self.output_compression(Compression::Zstd)
    }

    /// How Parquet outputs are written.
    pub fn parquet_options(&self) -> sluice_io::ParquetOptions {
        use sluice_io::ParquetCodec;
        let parquet = &self.output.parquet;
        let (codec, level) = match parquet.compression {
            ParquetCompression::None => (ParquetCodec::None, 0),
            ParquetCompression::Snappy => (ParquetCodec::Snappy, 0),
            ParquetCompression::Lz4 => (ParquetCodec::Lz4, 0),
            ParquetCompression::Zstd => (ParquetCodec::Zstd, parquet.level.unwrap_or(1)),
            ParquetCompression::Gzip => (
                ParquetCodec::Gzip,
                parquet.level.unwrap_or(self.output.gzip_level),
            ),
        };
        sluice_io::ParquetOptions {
            codec,
            level,
            row_group_rows: parquet.row_group_rows,
            row_group_bytes: parquet.row_group_bytes,
        }
    }

    pub fn compression_level(&self, compression: Compression) -> i32 {
        match compression {
            Compression::Gzip => self.output.gzip_level,
            _ => self.output.zstd_level,
        }
    }

    /// A hash of everything that decides the output bytes: fields, output encoding, chunking,
    /// stages and the contents of their term lists. Paths, thread count and the output directory
    /// are left out on purpose: they do not change a document's verdict.
    pub fn hash(&self) -> Result<String, ConfigError> {
        #[derive(Serialize)]
        struct Hashed<'a> {
            text_field: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            format: Option<crate::document::InputFormat>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            text_fields: &'a [crate::document::TextSource],
            id_field: &'a Option<String>,
            max_line_bytes: usize,
            compression: OutputCompression,
            zstd_level: i32,
            gzip_level: i32,
            max_spans: usize,
            audit: AuditScope,
            chunk_bytes: usize,
            stages: &'a [StageConfig],
            #[serde(skip_serializing_if = "ParquetOutputConfig::is_default")]
            parquet: &'a ParquetOutputConfig,
        }
        let hashed = Hashed {
            text_field: &self.input.text_field,
            format: self.input.format,
            text_fields: &self.input.text_fields,
            id_field: &self.input.id_field,
            max_line_bytes: self.input.max_line_bytes,
            compression: self.output.compression,
            zstd_level: self.output.zstd_level,
            gzip_level: self.output.gzip_level,
            max_spans: self.output.max_spans,
            audit: self.output.audit,
            chunk_bytes: self.run.chunk_bytes,
            stages: &self.stages,
            parquet: &self.output.parquet,
        };
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(&hashed).expect("config serializes"));
        for i in 0..self.stages.len() {
            for (name, bytes) in self.stages[i].hashed_inputs(&self.context(i))? {
                hasher.update(name.as_bytes());
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
        Ok(format!("sha256:{}", hex(&hasher.finalize())))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected_everywhere() {
        for text in [
            "bogus = 1",
            "[input]\ntext_feild = 'x'",
            "[[stages]]\ntype = 'rules'\nid = 'r'\nrules = []\ncolour = 1",
            "[[stages]]\ntype = 'rules'\nid = 'r'\n[[stages.rules]]\nid='a'\npattern='x'\naction='drop'\nextra=1",
            "[[stages]]\ntype = 'nonsense'\nid = 'x'",
        ] {
            let err = Config::from_toml(text, Path::new(".")).unwrap_err().to_string();
            assert!(err.contains("unknown"), "{text:?} gave {err}");
        }
    }

    #[test]
    fn defaults_are_filled_in() {
        let c = Config::from_toml("", Path::new(".")).unwrap();
        assert_eq!(c.input.text_field, "text");
        assert_eq!(c.output.compression, OutputCompression::Same);
        assert_eq!(c.run.chunk_bytes, 4 << 20);
        c.validate().unwrap();
    }

    #[test]
    fn duplicate_stage_ids_and_bad_levels_are_named() {
        let c = Config::from_toml(
            "[[stages]]\ntype='rules'\nid='a'\nrules=[]\n[[stages]]\ntype='rules'\nid='a'\nrules=[]",
            Path::new("."),
        )
        .unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("stages[1].id"));
        let c = Config::from_toml("[output]\nzstd_level = 40", Path::new(".")).unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("output.zstd_level"));
    }

    #[test]
    fn hash_ignores_threads_and_paths_but_not_stages() {
        let a = Config::from_toml("[run]\nthreads = 1", Path::new(".")).unwrap();
        let b = Config::from_toml(
            "[run]\nthreads = 8\n[input]\npaths=['x']\n[output]\ndir='o'",
            Path::new("."),
        )
        .unwrap();
        let c = Config::from_toml("[[stages]]\ntype='rules'\nid='a'\nrules=[]", Path::new("."))
            .unwrap();
        assert_eq!(a.hash().unwrap(), b.hash().unwrap());
        assert_ne!(a.hash().unwrap(), c.hash().unwrap());
    }

    #[test]
    fn hash_does_not_depend_on_where_the_config_was_loaded_from() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.tsv"), "sarin\tchem\t1\n").unwrap();
        let text = "[[stages]]\ntype='terms'\nid='t'\nlists=['t.tsv']\naction='escalate'";
        let absolute = Config::from_toml(text, dir.path()).unwrap();
        let dotted = Config::from_toml(text, &dir.path().join(".")).unwrap();
        let before = absolute.hash().unwrap();
        assert_eq!(before, dotted.hash().unwrap());
        // The list's bytes are hashed.
        std::fs::write(dir.path().join("t.tsv"), "soman\tchem\t1\n").unwrap();
        assert_ne!(before, absolute.hash().unwrap());
    }
}
