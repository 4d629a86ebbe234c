"""
Attention: what does a masked language model (BERT, RoBERTa ...) or a causal one
(GPT-2 ...) pay attention to?

CS50 AI's "Attention" project, grown into a tool for students and researchers.

Usage:
    python mask.py                                   # asks "Text: " like CS50
    python mask.py "The turtle slowly moved across the [MASK]."
    python mask.py "Then I picked up a [MASK] from the table." -k 5 --scores
    python mask.py "The cat sat on the <mask>." --model roberta-base
    python mask.py "The cat sat on the" --model gpt2  # a causal LM: its next words
    python mask.py TEXT --model DIR_OR_HUB_NAME --output-dir out/
    python mask.py "The cat sat on the [MASK]." --rollout      # also attention rollout
    python mask.py "I was hungry. [SEP] I ate a [MASK]."        # a sentence pair
    python mask.py --corpus sentences.txt            # every head averaged over many sentences
    python mask.py --help                            # every option

In a notebook (attention.ipynb, atencion.ipynb):
    run = mask.explain("The cat sat on the [MASK].", model="bundled")
    run                                              # the interactive viewer, inline

Prints the top-K fill-ins for the mask (one full sentence per line; a causal LM's
top-K next words, each after the prompt), writes one
grayscale diagram per layer and head, Attention_Layer{L}_Head{H}.png (lighter
cell = more attention; row = the attending token, column = the token attended
to), an overview of every head (Attention_Overview.png) and an interactive
viewer (attention.html). With --corpus FILE it instead runs the model over every
sentence of FILE and writes each head's mean pattern scores (heads.csv,
Heads_Summary.png; see corpus.py).
"""

import argparse
import os
import sys

from PIL import ImageFont

import attention_run
import corpus
import diagrams
import errors
import fill_ins
import model_loading
import model_source
import outputs
import patterns
from errors import UserError, WriteError

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
    """Read a sentence, print the top-K fill-ins for its mask (or next words), draw every head's attention."""
    parser = argparse.ArgumentParser(
        prog="mask.py",
        description="Fill in the [MASK] of a sentence with a masked language model (BERT, RoBERTa ...), or "
        "continue a prompt with a causal one (GPT-2 ...), and draw what every attention head looks at.",
        epilog="Files: Attention_Layer{L}_Head{H}.png for each layer and head, Attention_Overview.png, "
        "attention.html (open it in a browser; works offline).",
    )
    parser.add_argument("text", nargs="?", help="sentence containing the mask token ([MASK], <mask>); for a causal "
                        "model, the beginning of a sentence (asked for when left out); 'A [SEP] B' is read as a "
                        "sentence pair")
    parser.add_argument(
        "--model",
        help=f"Hugging Face model name or local directory (default: {MODEL}); "
        f"'{model_source.BUNDLED}' = the small offline model that ships with this tool",
    )
    parser.add_argument("-k", "--top-k", type=_positive_int, default=K, metavar="K",
                        help=f"number of fill-ins per mask, or of next words (default: {K})")
    parser.add_argument("--output-dir", default=".", metavar="DIR",
                        type=_name("a folder name (. for the current folder)"),
                        help="where the images and viewer go (created if missing; default: .)")
    parser.add_argument("--scores", action="store_true", help="print each fill-in's (or next word's) probability")
    parser.add_argument("--patterns", action="store_true",
                        help="print the heads that most attend to the previous/next token, itself, "
                        "[CLS] and [SEP] (<s>, </s> ...), punctuation, or broadly")
    parser.add_argument("--words", action="store_true",
                        help="merge word pieces into words (the tokenizer's own word boundaries) before drawing")
    parser.add_argument("--save", metavar="FILE.npz", type=_name("a file name"),
                        help="save tokens, attentions, fill-ins (or next words) and pattern scores "
                        "(numpy.load reads it)")
    parser.add_argument("--no-html", action="store_true", help="don't write attention.html")
    parser.add_argument("--rollout", action="store_true",
                        help="also compute attention rollout over all layers: Attention_Rollout.png, in the viewer "
                        "and in --save")
    parser.add_argument("--corpus", metavar="FILE",
                        help="analyse every sentence of FILE (one per line; blank and # lines skipped) instead of "
                        "one text: writes heads.csv and Heads_Summary.png (each head's mean pattern scores) and "
                        "prints the top heads; --save keeps every sentence's scores")
    parser.add_argument("--batch-size", type=_positive_int, default=corpus.BATCH_SIZE, metavar="N",
                        help=f"sentences per forward pass with --corpus (default: {corpus.BATCH_SIZE})")
    parser.error = lambda message: _fail(f"mask.py: {message} (see --help)", 2)  # one line, not usage + error
    outputs.plug_closed_streams()
    args = parser.parse_args(argv)
    if args.corpus is not None:
        given = [name for name, on in [("TEXT", args.text is not None), ("--words", args.words),
                                       ("--scores", args.scores), ("--rollout", args.rollout)] if on]
        if given:
            parser.error(f"{given[0]} does not go with --corpus")

    with errors.signals_interrupt():  # SIGTERM and SIGHUP stop a run as Ctrl-C does
        try:
            outputs.check_stdout()
            if args.corpus is not None:
                _analyse_corpus(args)
                return
            text = args.text if args.text is not None else _ask_for_text()

            # Tokenize input and check it; the (slow) model is loaded only for usable text
            request = attention_run.prepare(text, args.model or MODEL, fallback_to_bundled=args.model is None)
            top_k, k_notes = request.checked_top_k(args.top_k)
            skipped = _prepare_outputs(args)
            request.load()  # the model first: one that fails to load gets its one-line error only
            for note in request.notes + k_notes + skipped:
                _notice(note)

            # Use model to process input and generate predictions
            run = request.run(top_k=top_k, words=args.words, style=_style())
            for note in run.notes[len(request.notes):]:  # what the run itself found
                _notice(note)
            if run.predictions is not None:
                _print_predictions(run.predictions, args.scores)
            if args.patterns:
                outputs.print_lines(patterns.format_top_heads(patterns.top_heads(run.patterns), run.special))

            # Visualize attentions
            if not run.legible:
                _notice(
                    f"Note: {len(run.tokens)} tokens are more than the {MAX_DIAGRAM_TOKENS} that per-head diagrams "
                    "and the viewer show legibly; writing only the overview. Use a shorter text or --words."
                )
            written = run.save(args.output_dir, html=not args.no_html and attention_run.viewer_available(),
                               rollout=args.rollout, notify=_notice)
            if args.save is not None:
                run.save_npz(args.save, rollout=args.rollout)
                _notice(f"Saved the data to {args.save}")
            _notice(f"Wrote {', '.join(written)} to {os.path.abspath(args.output_dir)}")
        except UserError as error:
            _fail(str(error), 1)
        except EOFError:
            _fail("No text given (end of input).", 1)
        except UnicodeDecodeError:  # bytes on stdin that aren't UTF-8 (outside a C.UTF-8 locale)
            _fail("Text is not valid UTF-8: check the terminal's encoding.", 1)
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM/SIGHUP (errors.Interrupted)
            _fail(getattr(interrupt, "message", "Interrupted."), getattr(interrupt, "status", 130))
        except OSError as error:  # anything the tool reads; every write error is a UserError naming the file
            _fail(_cannot_read(error), 1)


def get_mask_token_index(mask_token_id, inputs):
    """
    Return the 0-based index of the first mask token in `inputs["input_ids"][0]`,
    as a Python int, or None if the sequence holds no mask token.

    `inputs` may be a BatchEncoding or a dict whose "input_ids" (shape (1, n)) is a
    TensorFlow tensor, a NumPy array or a nested list.
    """
    positions = fill_ins.mask_positions(mask_token_id, inputs["input_ids"][0])
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


def visualize_attentions(tokens, attentions, output_dir="."):
    """
    Produce one diagram per layer and head, in output_dir.

    attentions: one (batch=1, heads, seq, seq) array per layer, as the model
    returns them; the numbers of layers and heads come from the data.
    """
    # PNGs are encoded and written on a few threads while the next diagram is drawn
    with diagrams.background_writes():
        for i, layer in enumerate(attentions):
            for k in range(len(layer[0])):
                layer_number = i + 1
                head_number = k + 1
                generate_diagram(layer_number, head_number, tokens, attentions[i][0][k], output_dir=output_dir)


def generate_diagram(layer_number, head_number, tokens, attention_weights, output_dir="."):
    """
    Write Attention_Layer{layer_number}_Head{head_number}.png into output_dir (by
    default the current directory): a square of side GRID_SIZE * len(tokens) +
    PIXELS_PER_WORD on black, tokens as right-aligned row labels on the left and
    rotated column labels on top, and cell (i, j) at (PIXELS_PER_WORD + j * GRID_SIZE,
    PIXELS_PER_WORD + i * GRID_SIZE) filled with the gray of attention_weights[i][j]
    (row i attends to column j).
    """
    # pixels: (side, side) gray levels; the label margins are drawn once per sentence and copied
    pixels = diagrams.head_pixels(tokens, attention_weights, FONT, GRID_SIZE, PIXELS_PER_WORD)
    filename = f"Attention_Layer{layer_number}_Head{head_number}.png"
    diagrams.save_png(pixels, os.path.join(output_dir, filename))


def explain(text, model=None, top_k=K, words=False):
    """
    The notebook API: run the tool on `text` and return an AttentionRun with
    .text, .model, .tokens (as drawn), .attentions (layers, heads, n, n) float32,
    .predictions (one list per mask of top_k candidates with .token, .probability,
    .sentence: the sentences the command line prints), .patterns, .special_tokens,
    .segments (for "A [SEP] B"), .diagram(layer, head) and .overview() (PIL images,
    the files' pixels; layers and heads count from 1), .query_key(layer, head),
    .rollout(), .save(directory) (the command line's files). In a notebook it shows
    itself as the interactive viewer.

    The same code path as the command line; a model loads once per process. Bad
    input raises UserError with the one-line message the command line prints.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a string containing the mask token; got {type(text).__name__}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UserError(f"top_k must be a whole number of at least 1, not {top_k!r}")
    try:
        request = attention_run.prepare(text, model or MODEL, fallback_to_bundled=model is None)
        run = request.run(top_k=top_k, words=words, style=_style())
    except UserError:
        raise
    except OSError as error:  # as main() reports it: one line
        raise UserError(_cannot_read(error)) from None
    for note in run.notes:  # what the command line says on stderr (a fallback model, a missing head)
        _notice(note)
    return run


def _style():
    """CS50's constants and drawing functions, for the run object's diagrams."""
    return attention_run.Style(font=FONT, grid_size=GRID_SIZE, margin=PIXELS_PER_WORD,
                               max_tokens=MAX_DIAGRAM_TOKENS, visualize=visualize_attentions)


def _analyse_corpus(args):
    """--corpus: every sentence of a file through the model in batches; print the top heads, write the files."""
    sentences = corpus.read_sentences(args.corpus)  # a missing or empty file fails before the model loads
    outputs.check_writable(args.output_dir)
    save_dir = os.path.dirname(os.path.abspath(args.save)) if args.save else None
    if save_dir and not os.path.isdir(save_dir):  # found now, not after a long corpus
        raise WriteError(save_dir, "No such file or directory")
    result = corpus.analyse(sentences, args.model or MODEL, fallback_to_bundled=args.model is None,
                            batch_size=args.batch_size, notify=_notice, progress=True)
    print("\n".join(result.top_heads_lines()))
    sys.stdout.flush()
    written = result.save(args.output_dir)
    if args.save:
        result.save_npz(args.save)
        _notice(f"Saved every sentence's scores to {args.save}")
    _notice(f"Analysed {len(result.texts)} sentences; wrote {', '.join(written)} to {os.path.abspath(args.output_dir)}")


def _prepare_outputs(args):
    """Check every output place before the model loads; returns notes about extras that are skipped."""
    # --save first, so that a bad --save leaves no new output folder; unless it goes into that folder
    into_output_dir = args.save is not None and os.path.dirname(os.path.abspath(args.save)) == os.path.abspath(
        args.output_dir)
    if args.save is not None and not into_output_dir:
        outputs.check_target(args.save)
    outputs.check_writable(args.output_dir)
    if into_output_dir:
        outputs.check_target(args.save)
    notes = []
    if not args.no_html and not attention_run.viewer_available():
        notes.append(f"Note: {attention_run.viewer.TEMPLATE_PATH} is missing, so no attention.html is written "
                     "(the fill-ins and diagrams are complete).")
    return notes


def _ask_for_text():
    """
    CS50's input("Text: "). From a pipe or file, at most attention_run.MAX_TEXT_CHARS
    are read, so an endless line (cat /dev/zero | ...) can't fill the memory.
    """
    if sys.stdin is None:  # started with stdin closed (<&-)
        raise UserError("No text given: standard input is closed.")
    if sys.stdin.isatty():  # a person typing: input() gives line editing
        try:
            return input("Text: ")
        except BrokenPipeError:  # the prompt's reader has gone: read without one
            outputs.drop_stdout()
            return input()
    outputs.print_lines(["Text: "], end="")
    line = sys.stdin.readline(attention_run.MAX_TEXT_CHARS + 1)
    if not line:
        raise EOFError
    if len(line) > attention_run.MAX_TEXT_CHARS:
        raise UserError(f"Text is too long: more than {attention_run.MAX_TEXT_CHARS:,} characters.")
    return line[:-1] if line.endswith("\n") else line


def _print_predictions(predictions, with_scores):
    """CS50's output: one sentence per fill-in; grouped per mask when there are several."""
    lines = []
    for nth, group in enumerate(predictions):
        if len(predictions) > 1:
            lines.append(f"Mask {nth + 1} of {len(predictions)}:")
        for candidate in group:
            line = candidate.sentence
            if with_scores:
                line += f"  ({candidate.probability:.3f})"
            lines.append(line)
    outputs.print_lines(lines)


def _cannot_read(error):
    """The one line for a file the tool could not read."""
    return f"Cannot read {error.filename}: {error.strerror or error}"


def _positive_int(value):
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return number


def _name(what):
    """An argparse type for a file or folder name: an empty one is an error of its own, not "No such file"."""
    def name(value):
        if not value:
            raise argparse.ArgumentTypeError(f"expected {what}, not an empty string")
        return value

    return name


def _notice(message):
    """Anything but the fill-ins goes to stderr, so stdout stays CS50's output."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr gone (a closed terminal, a reader that left): nothing to tell
        pass


def _fail(message, status):
    _notice(message)
    sys.exit(status)


if __name__ == "__main__":
    main()
    model_loading.exit_now()  # everything is written: skip TensorFlow's slow teardown
