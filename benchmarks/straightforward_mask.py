"""
The straightforward CS50 program, as most students write it: the baseline for
the whole-run benchmark. Usage: python straightforward_mask.py MODEL_DIR OUTPUT_DIR
(reads the sentence from standard input, like CS50's "Text: " prompt).
"""

import sys

import tensorflow as tf
from transformers import AutoTokenizer, TFBertForMaskedLM

from benchmarks import reference_renderer

K = 3


def main():
    model_name, output_dir = sys.argv[1], sys.argv[2]
    text = input("Text: ")

    # Tokenize input
    tokenizer = AutoTokenizer.from_pretrained(model_name)
    inputs = tokenizer(text, return_tensors="tf")
    mask_token_index = get_mask_token_index(tokenizer.mask_token_id, inputs)
    if mask_token_index is None:
        sys.exit(f"Input must include mask token {tokenizer.mask_token}.")

    # Use model to process input
    model = TFBertForMaskedLM.from_pretrained(model_name)
    result = model(**inputs, output_attentions=True)

    # Generate predictions
    mask_token_logits = result.logits[0, mask_token_index]
    top_tokens = tf.math.top_k(mask_token_logits, K).indices.numpy()
    for token in top_tokens:
        print(text.replace(tokenizer.mask_token, tokenizer.decode([token])))

    # Visualize attentions
    reference_renderer.visualize_attentions(inputs.tokens(), result.attentions, output_dir)


def get_mask_token_index(mask_token_id, inputs):
    for i, token in enumerate(inputs.input_ids[0]):
        if token == mask_token_id:
            return i
    return None


if __name__ == "__main__":
    main()
