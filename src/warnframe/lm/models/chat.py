"""Turn requests and answers into model text, for any tokenizer.

One rule for every model: if the tokenizer has a chat template, use it; otherwise fall back to a
plain instruction layout. Training, sampling and every later stage go through these two functions,
so a prompt is rendered the same way everywhere.
"""

from __future__ import annotations

from warnframe.schema import Example

FALLBACK_USER = "### Request:\n{user}\n\n### Answer:\n"


def render_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """The text a model sees before it answers ``user`` (with an optional system prompt)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": user}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # templates that reject a system role (Gemma): fold it into the user turn
            if not system:
                raise
            merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
            return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    text = FALLBACK_USER.format(user=user)
    return f"{system}\n\n{text}" if system else text


def render_example(tokenizer, ex: Example) -> tuple[str, str]:
    """(prompt, completion) strings of a training example; documents have an empty prompt.

    The completion ends with the end-of-sequence token, so a model learns where an answer stops.
    """
    eos = tokenizer.eos_token or ""
    if ex.user is None:
        return "", ex.assistant + eos
    return render_prompt(tokenizer, ex.user), ex.assistant + eos
