"""
The straightforward renderer most CS50 students run, kept as the baseline that
the fast renderer in diagrams.py must match pixel for pixel and beat on time.

For every head it builds a full-size RGBA image per token for the column labels
(rotated and pasted one by one), fills the grid one rectangle at a time, and
reads the attention tensor one cell at a time. Written from that description;
it is not used by mask.py.
"""

import os

from PIL import Image, ImageDraw

import mask


def generate_diagram(layer_number, head_number, tokens, attention_weights, output_dir="."):
    image_size = mask.GRID_SIZE * len(tokens) + mask.PIXELS_PER_WORD
    img = Image.new("RGBA", (image_size, image_size), "black")
    draw = ImageDraw.Draw(img)

    # Draw each token onto the image
    for i, token in enumerate(tokens):
        # Column labels: a full-size transparent layer per token, rotated into the top margin
        token_image = Image.new("RGBA", (image_size, image_size), (0, 0, 0, 0))
        token_draw = ImageDraw.Draw(token_image)
        token_draw.text(
            (image_size - mask.PIXELS_PER_WORD, mask.PIXELS_PER_WORD + i * mask.GRID_SIZE),
            token,
            fill="white",
            font=mask.FONT,
        )
        token_image = token_image.rotate(90)
        img.paste(token_image, mask=token_image)

        # Row labels, right-aligned against the grid
        _, _, width, _ = draw.textbbox((0, 0), token, font=mask.FONT)
        draw.text(
            (mask.PIXELS_PER_WORD - width, mask.PIXELS_PER_WORD + i * mask.GRID_SIZE),
            token,
            fill="white",
            font=mask.FONT,
        )

    # One rectangle per cell, one tensor read per cell
    for i in range(len(tokens)):
        y = mask.PIXELS_PER_WORD + i * mask.GRID_SIZE
        for j in range(len(tokens)):
            x = mask.PIXELS_PER_WORD + j * mask.GRID_SIZE
            color = mask.get_color_for_attention_score(attention_weights[i][j])
            draw.rectangle((x, y, x + mask.GRID_SIZE, y + mask.GRID_SIZE), fill=color)

    img.save(os.path.join(output_dir, f"Attention_Layer{layer_number}_Head{head_number}.png"))


def visualize_attentions(tokens, attentions, output_dir="."):
    """attentions: one (batch=1, heads, seq, seq) tensor per layer, as the model returns them."""
    for i, layer in enumerate(attentions):
        for k in range(len(layer[0])):
            generate_diagram(i + 1, k + 1, tokens, attentions[i][0][k], output_dir)
