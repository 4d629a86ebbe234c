"""
Queries and keys: the vectors whose scaled dot products are a head's attention.

In every layer the model projects its input hidden states (the embeddings for
layer 1, the previous layer's output after that) with the layer's query and key
Dense weights (kernel and bias), and splits each result into heads of d numbers:

    scores = q k^T / sqrt(d)            (n, n) for one head
    attention = softmax(scores, rows)   what output_attentions gives (no padding: one sentence)

`queries_and_keys` redoes those two projections from the model's own weights and
hidden states, so a student can check the formula on a real head. It runs only
when asked (the viewer's query/key panel, AttentionRun.query_key): a normal run
only keeps the hidden states, which the forward pass computes anyway.

Families: `PROJECTIONS` maps a config's model_type to a function that yields
each layer's (query, key) Dense layers; a family whose queries and keys are
computed differently (rotary embeddings, a fused QKV kernel) adds its entry here.
"""

import numpy as np

from errors import UserError


def bert_projections(network):
    """
    Each layer's (query, key) keras Dense layers of a BERT-like encoder (BERT, RoBERTa,
    XLM-RoBERTa, CamemBERT, ELECTRA): network.<prefix>.encoder.layer[i].attention.self_attention.
    """
    for layer in getattr(network, network.base_model_prefix).encoder.layer:
        attention = layer.attention.self_attention
        yield attention.query, attention.key


def distilbert_projections(network):
    """DistilBERT: q_lin and k_lin (it scales q by 1/sqrt(d) before the product: the same scores)."""
    for layer in network.distilbert.transformer.layer:
        yield layer.attention.q_lin, layer.attention.k_lin


def albert_projections(network):
    """
    ALBERT shares its layers: layer i uses group i * groups // layers, whose one inner
    layer (inner_group_num 1, as every released ALBERT) holds the query and key.
    """
    config = network.config
    groups = network.albert.encoder.albert_layer_groups
    for index in range(config.num_hidden_layers):
        group = groups[index * config.num_hidden_groups // config.num_hidden_layers]
        attention = group.albert_layers[0].attention
        yield attention.query, attention.key


# config.model_type -> function(network) yielding (query Dense, key Dense) per layer, first layer first.
# Left out: MPNet and DeBERTa add position terms to q.k, MobileBERT projects queries and keys from
# different inputs, and the causal LMs (fused QKV kernels, rotary positions, masked keys).
PROJECTIONS = {"bert": bert_projections, "roberta": bert_projections, "xlm-roberta": bert_projections,
               "camembert": bert_projections, "electra": bert_projections,
               "distilbert": distilbert_projections, "albert": albert_projections}


def supported(network):
    """True if this network's family is in PROJECTIONS (ALBERT: with one inner layer per group)."""
    config = network.config
    if getattr(config, "model_type", None) == "albert" and getattr(config, "inner_group_num", 1) != 1:
        return False
    return getattr(config, "model_type", None) in PROJECTIONS


class QueryKeySource:
    """
    One run's queries and keys, computed on first use and kept: what AttentionRun holds
    (a normal command-line run never asks for them when the viewer would not carry them).
    """

    def __init__(self, network, hidden_states):
        self.network, self.hidden_states = network, hidden_states  # hidden_states: (layers + 1, n, hidden)
        self._value = None

    @property
    def supported(self):
        """False for a family PROJECTIONS doesn't know: then there are no queries and keys to give."""
        return supported(self.network)

    @property
    def shape(self):
        """(layers, heads, 2, n, d) without computing anything."""
        layers_plus_one, n, hidden = self.hidden_states.shape
        heads = self.network.config.num_attention_heads
        return (layers_plus_one - 1, heads, 2, n, hidden // heads)

    def __call__(self):
        if not self.supported:
            model_type = getattr(self.network.config, "model_type", "these")
            raise UserError(f"Queries and keys of {model_type} models are not available yet "
                            "(query_key.PROJECTIONS lists the families that have them).")
        if self._value is None:
            self._value = queries_and_keys(self.network, self.hidden_states)
        return self._value


def queries_and_keys(network, hidden_states):
    """
    Every head's queries and keys, from the network's weights.

    hidden_states: (layers + 1, n, hidden), as output_hidden_states gives them
    (entry l is the input of layer l + 1; the last entry, the final output, is unused).
    Returns (layers, heads, 2, n, d) float32: [..., 0, :, :] = queries, [..., 1, :, :] = keys,
    d = hidden / heads.
    """
    heads = network.config.num_attention_heads
    result = []
    for layer_input, (query, key) in zip(hidden_states, PROJECTIONS[network.config.model_type](network),
                                         strict=False):
        batch = np.asarray(layer_input, dtype=np.float32)[None]  # (1, n, hidden): the Dense layers' input
        # projected: (2, n, heads * d) -> (2, n, heads, d) -> (heads, 2, n, d)
        projected = np.stack([query(batch).numpy()[0], key(batch).numpy()[0]])
        n = projected.shape[1]
        result.append(projected.reshape(2, n, heads, -1).transpose(2, 0, 1, 3))
    return np.ascontiguousarray(np.stack(result), dtype=np.float32)


def attention_from(queries, keys):
    """softmax(q k^T / sqrt(d)) over each row, in float64: (n, d), (n, d) -> (n, n). The formula, for checks."""
    q, k = np.asarray(queries, dtype=np.float64), np.asarray(keys, dtype=np.float64)
    scores = q @ k.T / np.sqrt(q.shape[-1])
    scores -= scores.max(axis=-1, keepdims=True)  # the same softmax, without overflow
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)
