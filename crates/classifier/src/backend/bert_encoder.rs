//! The BERT encoder (embeddings + post-norm transformer layers) used by the BERT, DistilBERT and
//! sentence-transformers backends. It reads the same tensors as
//! `candle_transformers::models::bert::BertModel` and computes the same function (and PyTorch's
//! `BertModel`), but runs each layer as four matrix products and three fused kernels
//! ([`super::kernels`]): the query, key and value projections as one product, attention without
//! padded keys, and biases folded into the GELU and residual + layer-norm passes. Hidden states
//! stay `(batch × seq, hidden)` so every product is one large matrix product instead of one per
//! document.

use candle_core::{Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use candle_transformers::models::bert::{Config, HiddenAct};

use super::kernels::{self, Param};

/// A weight matrix applied without its bias (the bias is fused downstream).
struct Projection {
    /// The `(out, in)` weight as `(in, out)`: copied once at load time into that layout
    /// (`gemm` packs a row-major right-hand side 2–5% faster than the transposed view, on
    /// every call), except for projections of at most [`SMALL_PATH_MAX`] outputs, which keep
    /// the transposed view (and so the exact results they had).
    weight_t: Tensor,
    bias: Param,
}

impl Projection {
    fn load(vb: &VarBuilder, input: usize, output: usize) -> Result<Self> {
        Self::new(
            vb.get((output, input), "weight")?,
            Param::new(vb.get(output, "bias")?)?,
        )
    }

    /// From the `(out, in)` weight as stored.
    fn new(weight: Tensor, bias: Param) -> Result<Self> {
        let weight_t = if weight.dim(0)? <= SMALL_PATH_MAX {
            weight.t()?
        } else {
            weight.t()?.contiguous()?
        };
        Ok(Projection { weight_t, bias })
    }

    /// `x (rows, in) → (rows, out)` without the bias.
    fn matmul(&self, x: &Tensor) -> Result<Tensor> {
        if self.weight_t.dim(1)? <= SMALL_PATH_MAX {
            fixed_rows_matmul(x, &self.weight_t)
        } else {
            kernels::matmul(x, &self.weight_t)
        }
    }
}

/// Rows per matrix product in [`fixed_rows_matmul`].
const ROW_BLOCK: usize = 64;

/// `gemm` (candle's CPU matrix product) sums in an order that depends on the product's shape in
/// two cases only: one row (`m == 1`: a matrix-vector kernel) and `m, n <= 64` (a small-matrix
/// blocking whose depth blocks differ from the general one's beyond 512). Otherwise the depth
/// blocking comes from `k` and the cache sizes alone, so a row's result does not depend on how
/// many other rows share the product.
const SMALL_PATH_MAX: usize = 64;

/// `x (rows, in) @ w (in, out)`, computed [`ROW_BLOCK`] rows at a time (the last block padded
/// with zeros), so that every product has the same shape. Used where `gemm` would otherwise pick
/// its summation order from the row count (see [`SMALL_PATH_MAX`]): the classification heads
/// (one row per window: a lone window would take the matrix-vector kernel) and projections of at
/// most 64 outputs (tiny models). With it, a window's score is bit-for-bit the same whatever
/// other documents it is batched with, so a run's scores do not depend on how documents were
/// grouped — which `sluice rethreshold` and `sluice eval` rely on. Real-size encoder projections
/// (hundreds of outputs) take one product over all rows: blocking them costs 12–30%.
pub(crate) fn fixed_rows_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let rows = x.dim(0)?;
    let mut parts = Vec::with_capacity(rows.div_ceil(ROW_BLOCK));
    let mut start = 0;
    while start < rows {
        let n = ROW_BLOCK.min(rows - start);
        let block = x.narrow(0, start, n)?;
        parts.push(if n == ROW_BLOCK {
            block.matmul(w)?
        } else {
            block
                .pad_with_zeros(0, 0, ROW_BLOCK - n)?
                .matmul(w)?
                .narrow(0, 0, n)?
        });
        start += n;
    }
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one part"));
    }
    Tensor::cat(&parts, 0)
}

/// A `candle_nn::Linear` on `(rows, in)`, with [`fixed_rows_matmul`]'s batch independence.
pub(crate) fn fixed_rows_linear(linear: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    let y = fixed_rows_matmul(x, &linear.weight().t()?)?;
    match linear.bias() {
        Some(bias) => y.broadcast_add(bias),
        None => Ok(y),
    }
}

struct NormParams {
    gamma: Param,
    beta: Param,
}

impl NormParams {
    fn load(vb: &VarBuilder, size: usize) -> Result<Self> {
        Ok(NormParams {
            gamma: Param::new(vb.get(size, "weight")?)?,
            beta: Param::new(vb.get(size, "bias")?)?,
        })
    }
}

struct Layer {
    /// Query, key and value projections stacked: `(3 × hidden, hidden)`.
    qkv: Projection,
    attention_out: Projection,
    attention_norm: NormParams,
    intermediate: Projection,
    output: Projection,
    output_norm: NormParams,
}

impl Layer {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        let attention = vb.pp("attention");
        let parts = ["query", "key", "value"]
            .iter()
            .map(|name| {
                let vb = attention.pp("self").pp(name);
                Ok((vb.get((hidden, hidden), "weight")?, vb.get(hidden, "bias")?))
            })
            .collect::<Result<Vec<_>>>()?;
        let qkv = Projection::new(
            Tensor::cat(&parts.iter().map(|p| &p.0).collect::<Vec<_>>(), 0)?,
            Param::new(Tensor::cat(
                &parts.iter().map(|p| &p.1).collect::<Vec<_>>(),
                0,
            )?)?,
        )?;
        let intermediate = config.intermediate_size;
        Ok(Layer {
            qkv,
            attention_out: Projection::load(&attention.pp("output.dense"), hidden, hidden)?,
            attention_norm: NormParams::load(&attention.pp("output.LayerNorm"), hidden)?,
            intermediate: Projection::load(&vb.pp("intermediate.dense"), hidden, intermediate)?,
            output: Projection::load(&vb.pp("output.dense"), intermediate, hidden)?,
            output_norm: NormParams::load(&vb.pp("output.LayerNorm"), hidden)?,
        })
    }

    fn forward(
        &self,
        hidden: &Tensor,
        keep: &Tensor,
        attention: &kernels::Attention,
        config: &Config,
    ) -> Result<Tensor> {
        let eps = config.layer_norm_eps;
        let qkv = self.qkv.matmul(hidden)?;
        let context = kernels::attention(&qkv, keep, attention)?;
        let attended = kernels::add_layer_norm(
            self.attention_out.matmul(&context)?,
            hidden,
            &self.attention_out.bias,
            &self.attention_norm.gamma,
            &self.attention_norm.beta,
            eps,
        )?;
        let inner = self.intermediate.matmul(&attended)?;
        let bias = &self.intermediate.bias;
        let activated = match config.hidden_act {
            HiddenAct::Gelu => kernels::bias_gelu(inner, bias)?,
            HiddenAct::GeluApproximate => inner.broadcast_add(&bias.tensor)?.gelu()?,
            HiddenAct::Relu => inner.broadcast_add(&bias.tensor)?.relu()?,
        };
        kernels::add_layer_norm(
            self.output.matmul(&activated)?,
            &attended,
            &self.output.bias,
            &self.output_norm.gamma,
            &self.output_norm.beta,
            eps,
        )
    }
}

/// Word, position and token-type embeddings followed by a layer norm.
struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        let hidden = config.hidden_size;
        Ok(Embeddings {
            words: candle_nn::embedding(config.vocab_size, hidden, vb.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                config.max_position_embeddings,
                hidden,
                vb.pp("position_embeddings"),
            )?,
            token_types: candle_nn::embedding(
                config.type_vocab_size,
                hidden,
                vb.pp("token_type_embeddings"),
            )?,
            norm: candle_nn::layer_norm(hidden, config.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    /// `(batch, seq)` ids → `(batch × seq, hidden)`.
    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor) -> Result<Tensor> {
        let (_, seq) = input_ids.dims2()?;
        let words = self.words.forward(&input_ids.flatten_all()?)?;
        let types = self.token_types.forward(&token_type_ids.flatten_all()?)?;
        let positions = self
            .positions
            .embeddings()
            .narrow(0, 0, seq)?
            .repeat((input_ids.dim(0)?, 1))?;
        self.norm.forward(&((words + types)? + positions)?)
    }
}

/// BERT without pooler or head: token ids to last hidden states.
pub(crate) struct BertEncoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    config: Config,
}

impl BertEncoder {
    /// Loads from `vb` the tensors `embeddings.*` and `encoder.layer.N.*`, or, when those are
    /// missing, `{model_type}.embeddings.*` and so on (the prefix candle's `BertModel` also
    /// tries); errors name the first tensor that is missing or misshapen.
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Self> {
        match Self::load_at(vb.clone(), config) {
            Ok(encoder) => Ok(encoder),
            Err(err) => match &config.model_type {
                Some(prefix) => Self::load_at(vb.pp(prefix), config).map_err(|_| err),
                None => Err(err),
            },
        }
    }

    fn load_at(vb: VarBuilder, config: &Config) -> Result<Self> {
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            candle_core::bail!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size,
                config.num_attention_heads
            )
        }
        let embeddings = Embeddings::load(vb.pp("embeddings"), config)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), config))
            .collect::<Result<Vec<_>>>()?;
        Ok(BertEncoder {
            embeddings,
            layers,
            config: config.clone(),
        })
    }

    /// `(batch, seq)` u32 ids, token types and attention mask (1 = token) → `(batch, seq,
    /// hidden)` f32.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        attention_mask: &Tensor,
    ) -> Result<Tensor> {
        let (batch, seq) = input_ids.dims2()?;
        let keep = attention_mask.to_dtype(candle_core::DType::F32)?;
        let mut hidden = self.embeddings.forward(input_ids, token_type_ids)?;
        for layer in &self.layers {
            let attention = kernels::Attention {
                qkv_bias: &layer.qkv.bias,
                heads: self.config.num_attention_heads,
                batch,
                seq,
            };
            hidden = layer.forward(&hidden, &keep, &attention, &self.config)?;
        }
        hidden.reshape((batch, seq, self.config.hidden_size))
    }
}
