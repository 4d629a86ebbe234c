"""
Attention: what does a BERT masked language model pay attention to?

CS50 AI's "Attention" project, grown into a tool for students and researchers.

Usage:
    python mask.py                                   # asks "Text: " like CS50
    python mask.py "The turtle slowly moved across the [MASK]."
    python mask.py "Then I picked up a [MASK] from the table." -k 5 --scores
    python mask.py TEXT --model DIR_OR_HUB_NAME --output-dir out/
    python mask.py --help                            # every option

Prints the top-K fill-ins for the mask (one full sentence per line), writes one
grayscale diagram per layer and head, Attention_Layer{L}_Head{H}.png (lighter
cell = more attention; row = the attending token, column = the token attended
to), an overview of every head (Attention_Overview.png) and an interactive
viewer (attention.html).
"""

import argparse
import os
import re
import sys

from PIL import ImageFont

import diagrams
import models
import outputs
import patterns

# Model to use: a Hugging Face Hub name or a local directory ("bundled" = the small offline model)
MODEL = "bert-base-uncased"

# Number of predictions to generate for each mask
K = 3

# Font for the token labels, found next to this file so any working directory works
FONT = ImageFont.truetype(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "fonts", "OpenSans-Regular.ttf"), 28
)

# Side of one attention cell, in pixels
GRID_SIZE = 40

# Width of the label margins (left and top), in pixels
PIXELS_PER_WORD = 200

# Longest text, in tokens, drawn head by head (a diagram is GRID_SIZE pixels a token wide)
MAX_DIAGRAM_TOKENS = 128


def main(argv=None):
    """Read a sentence, print the top-K fill-ins for its mask, draw every head's attention."""
    parser = argparse.ArgumentParser(
        prog="mask.py",
        description="Fill in the [MASK] of a sentence with a BERT masked language model and draw "
        "what every attention head looks at.",
        epilog="Files: Attention_Layer{L}_Head{H}.png for each layer and head, Attention_Overview.png, "
        "attention.html (open it in a browser; works offline).",
    )
    parser.add_argument("text", nargs="?", help="sentence containing the mask token (asked for when left out)")
    parser.add_argument(
        "--model",
        help=f"Hugging Face model name or local directory (default: {MODEL}); "
        f"'{models.BUNDLED}' = the small offline model that ships with this tool",
    )
    parser.add_argument("-k", "--top-k", type=_positive_int, default=K, metavar="K",
                        help=f"number of fill-ins per mask (default: {K})")
    parser.add_argument("--output-dir", default=".", metavar="DIR",
                        help="where the images and viewer go (created if missing; default: .)")
    parser.add_argument("--scores", action="store_true", help="print each fill-in's probability")
    parser.add_argument("--patterns", action="store_true",
                        help="print the heads that most attend to the previous/next token, itself, "
                        "[CLS], [SEP], punctuation, or broadly")
    parser.add_argument("--words", action="store_true",
                        help="merge WordPiece pieces into words before drawing")
    parser.add_argument("--save", metavar="FILE.npz",
                        help="save tokens, attentions, fill-ins and pattern scores (numpy.load reads it)")
    parser.add_argument("--no-html", action="store_true", help="don't write attention.html")
    parser.error = lambda message: _fail(f"mask.py: {message} (see --help)", 2)  # one line, not usage + error
    args = parser.parse_args(argv)

    try:
        text = args.text if args.text is not None else input("Text: ")

        # Tokenize input; the mask is checked before the (slow) model is loaded
        source = models.locate(args.model or MODEL, fallback_to_bundled=args.model is None, notice=_notice)
        tokenizer = models.load_tokenizer(source)
        typed, text = text, _normalize_mask(text, tokenizer)
        inputs = tokenizer(text, return_tensors="np")
        _check_length(inputs, source)
        mask_positions = get_mask_token_indices(tokenizer.mask_token_id, inputs)
        if source.has_mlm_head and tokenizer.mask_token is None:
            raise models.UserError(f"The tokenizer of {source.label} has no mask token.")
        if source.has_mlm_head and not mask_positions:
            raise models.UserError(f"Input must include mask token {tokenizer.mask_token}.")
        _prepare_output_dir(args.output_dir)
        if text != typed:  # said only once the text is known to be usable: errors stay one line
            _notice(f"Note: reading [mask] as {tokenizer.mask_token}.")

        # Use model to process input
        model = models.load_model(source)
        # logits: (seq, vocab); attentions: (layers, batch=1, heads, seq, seq)
        logits, attentions = models.run(model, inputs)

        # Generate predictions
        predictions = None
        if source.has_mlm_head:
            predictions = models.fill_ins(tokenizer, text, logits, mask_positions, args.top_k)
            _print_predictions(predictions, args.scores)
        else:
            _notice(f"Note: {source.label} has no masked-LM head: drawing attention only, no fill-ins.")

        # Visualize attentions
        tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
        _write_outputs(args, text, source, tokenizer, tokens, attentions, predictions)
    except models.UserError as error:
        _fail(str(error), 1)
    except EOFError:
        _fail("No text given (end of input).", 1)
    except UnicodeDecodeError:  # bytes on stdin that aren't UTF-8 (outside a C.UTF-8 locale)
        _fail("Text is not valid UTF-8: check the terminal's encoding.", 1)
    except KeyboardInterrupt:
        _fail("Interrupted.", 130)
    except OSError as error:
        _fail(f"Cannot write {error.filename or args.output_dir}: {error.strerror or error}", 1)


def get_mask_token_index(mask_token_id, inputs):
    """
    Return the 0-based index of the first mask token in `inputs["input_ids"][0]`,
    as a Python int, or None if the sequence holds no mask token.

    `inputs` may be a BatchEncoding or a dict whose "input_ids" (shape (1, n)) is a
    TensorFlow tensor, a NumPy array or a nested list.
    """
    positions = get_mask_token_indices(mask_token_id, inputs)
    return positions[0] if positions else None


def get_color_for_attention_score(attention_score):
    """
    Return an (r, g, b) gray of Python ints for an attention score:
    g = round(score * 255), so 0 is black and 1 is white.

    Accepts a float, a NumPy scalar or a scalar tf.constant. Scores are clipped to
    [0, 1] (a score above 1 is white, below 0 black) and NaN is drawn black, so a
    broken score can never crash the drawing.
    """
    gray = diagrams.gray_level(float(attention_score))
    return (gray, gray, gray)


def visualize_attentions(tokens, attentions):
    """
    Produce one diagram per layer and head.

    attentions: one (batch=1, heads, seq, seq) array per layer, as the model
    returns them; the numbers of layers and heads come from the data.
    """
    for i, layer in enumerate(attentions):
        for k in range(len(layer[0])):
            layer_number = i + 1
            head_number = k + 1
            generate_diagram(layer_number, head_number, tokens, attentions[i][0][k])


def generate_diagram(layer_number, head_number, tokens, attention_weights):
    """
    Write Attention_Layer{layer_number}_Head{head_number}.png: a square of side
    GRID_SIZE * len(tokens) + PIXELS_PER_WORD on black, tokens as right-aligned row
    labels on the left and rotated column labels on top, and cell (i, j) at
    (PIXELS_PER_WORD + j * GRID_SIZE, PIXELS_PER_WORD + i * GRID_SIZE) filled with
    the gray of attention_weights[i][j] (row i attends to column j).

    The file goes to the current directory, or to the directory of an enclosing
    `diagrams.writing_to(...)` block (which also encodes the PNGs in parallel).
    """
    # pixels: (side, side) gray levels. The label margins depend only on the tokens,
    # so they are drawn once per sentence and every head starts from a copy
    pixels = diagrams.label_canvas(tuple(tokens), FONT, GRID_SIZE, PIXELS_PER_WORD).copy()
    # The grid: cell (i, j) is a GRID_SIZE x GRID_SIZE block of the gray of attention_weights[i][j]
    pixels[PIXELS_PER_WORD:, PIXELS_PER_WORD:] = diagrams.grid_pixels(attention_weights, GRID_SIZE)
    diagrams.save_png(pixels, f"Attention_Layer{layer_number}_Head{head_number}.png")


def get_mask_token_indices(mask_token_id, inputs):
    """Every mask position in inputs["input_ids"][0], in order (a list of ints)."""
    return [i for i, token_id in enumerate(_as_id_list(inputs["input_ids"][0])) if token_id == mask_token_id]


def _as_id_list(ids):
    """The token ids of one sequence as a list of Python ints, whatever holds them."""
    if hasattr(ids, "numpy"):  # a TensorFlow tensor
        ids = ids.numpy()
    if hasattr(ids, "tolist"):  # a NumPy array
        ids = ids.tolist()
    return [int(token_id) for token_id in ids]


def _normalize_mask(text, tokenizer):
    """Refuse empty or undecodable text; accept "[mask]" in any case for models whose mask token is "[MASK]"."""
    mask = tokenizer.mask_token
    if not text.strip():
        raise models.UserError(f"No text given: type a sentence containing {mask}.")
    if any("\ud800" <= ch <= "\udfff" for ch in text):  # undecodable bytes in argv or stdin (surrogateescape)
        raise models.UserError("Text is not valid UTF-8: check the terminal's encoding.")
    if mask == "[MASK]":
        text = re.sub(r"\[mask\]", mask, text, flags=re.IGNORECASE)
    return text


def _check_length(inputs, source):
    """BERT has a fixed number of positions; longer text is refused, not cut silently."""
    length = inputs["input_ids"].shape[1]
    limit = source.config.get("max_position_embeddings", 512)
    if length > limit:
        raise models.UserError(
            f"Text is too long: {length} tokens, and {source.label} reads at most {limit}. Shorten it."
        )


def _prepare_output_dir(directory):
    """Create the output directory and make sure we can write there, before any work."""
    os.makedirs(directory, exist_ok=True)
    with outputs.atomic_file(os.path.join(directory, ".attention-write-test")):
        pass
    os.remove(os.path.join(directory, ".attention-write-test"))


def _print_predictions(predictions, with_scores):
    """CS50's output: one sentence per fill-in; grouped per mask when there are several."""
    for nth, group in enumerate(predictions):
        if len(predictions) > 1:
            print(f"Mask {nth + 1} of {len(predictions)}:")
        for candidate in group["candidates"]:
            line = candidate["sentence"]
            if with_scores:
                line += f"  ({candidate['probability']:.3f})"
            print(line)
    sys.stdout.flush()


def _write_outputs(args, text, source, tokenizer, tokens, attentions, predictions):
    """Diagrams, overview, pattern scores, saved data and viewer, from NumPy arrays only."""
    if args.words:
        tokens, merged = patterns.merge_word_pieces(tokens, attentions[:, 0], tokenizer.all_special_tokens)
        attentions = merged[:, None]
    tokens = [diagrams.printable(token) for token in tokens]
    heads = attentions[:, 0]  # (layers, heads, seq, seq)
    scores = patterns.pattern_scores(heads, tokens, tokenizer.cls_token, tokenizer.sep_token)
    if args.patterns:
        print("\n".join(patterns.format_top_heads(patterns.top_heads(scores))))

    output_dir = args.output_dir
    legible = len(tokens) <= MAX_DIAGRAM_TOKENS
    if not legible:
        _notice(
            f"Note: {len(tokens)} tokens are more than the {MAX_DIAGRAM_TOKENS} that per-head diagrams and "
            "the viewer show legibly; writing only the overview. Use a shorter text or --words."
        )
    with diagrams.writing_to(output_dir):
        if legible:
            visualize_attentions(tokens, attentions)
        overview = diagrams.overview_image(heads, ImageFont.truetype(FONT.path, 20))
        diagrams.save_png(overview, "Attention_Overview.png")
    written = [f"{heads.shape[0] * heads.shape[1]} diagrams"] if legible else []
    written.append("Attention_Overview.png")

    if legible and not args.no_html:
        import viewer

        viewer.write_viewer(
            os.path.join(output_dir, "attention.html"),
            text=text, tokens=tokens, attentions=heads, predictions=predictions,
            patterns=patterns.top_heads(scores, count=5), model_name=source.label,
        )
        written.append("attention.html")
    if args.save:
        outputs.save_npz(args.save, text=text, model=source.label, tokens=tokens, attentions=heads,
                         predictions=predictions, patterns=scores)
        _notice(f"Saved the data to {args.save}")
    _notice(f"Wrote {', '.join(written)} to {os.path.abspath(output_dir)}")


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


def _notice(message):
    """Anything but the fill-ins goes to stderr, so stdout stays CS50's output."""
    print(message, file=sys.stderr)


def _fail(message, status):
    print(message, file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
