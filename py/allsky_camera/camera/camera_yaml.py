"""Camera configurations written as YAML with a comment on every key.

:func:`dump` writes a configuration mapping (as made by
:func:`allsky_camera.camera.config.camera_to_dict` or by ``ac_calibrate``) as block
YAML, one key per line, lists in flow style, each key followed by its
description from :data:`allsky_camera.camera.config.KEY_DOCS` (units and
conventions).  ``yaml.safe_load`` of the text gives the mapping back.
"""

from __future__ import annotations

#: Comments start at this column when the key and its value leave room
#: (characters); a longer line gets its comment two spaces after the value.
COMMENT_COLUMN = 34
#: Indentation of one nesting level.
INDENT = "  "
#: Wider than any line, so PyYAML never folds a value across lines.
_NO_FOLD = 1 << 20


def _scalar(value):
    """One-line YAML text of a scalar or a flat list."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=_NO_FOLD,
                          allow_unicode=True).rstrip("\n")
    if text.endswith("\n..."):          # PyYAML's document end after a plain scalar
        text = text[:-4]
    if "\n" in text:                    # a string with line breaks: escaped, one line
        text = yaml.safe_dump(value, default_style='"', width=_NO_FOLD,
                              allow_unicode=True).rstrip("\n")
        if "\n" in text:
            raise ValueError(f"cannot write {value!r} on one YAML line")
    return text


def _line(indent, key, value_text, doc):
    head = f"{INDENT * indent}{key}:" + (f" {value_text}" if value_text else "")
    pad = max(COMMENT_COLUMN - len(head), 2)
    return f"{head}{' ' * pad}# {doc}"


def key_line(key, value, doc, indent=0):
    """One ``key: value  # doc`` line, ``indent`` levels deep."""
    return _line(indent, key, _scalar(value), doc)


def _lines(mapping, docs, prefix, indent):
    out = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        doc = docs.get(path)
        if doc is None:
            raise ValueError(f"no description for the configuration key {path!r}: add one "
                             "to allsky_camera.camera.config.KEY_DOCS")
        if isinstance(value, dict) and value:
            out.append(_line(indent, key, "", doc))
            out += _lines(value, docs, f"{path}.", indent + 1)
        else:
            out.append(_line(indent, key, _scalar(value), doc))
    return out


def dump(mapping, *, preamble=(), docs=None):
    """YAML text of a camera configuration with a comment on every key.

    Parameters
    ----------
    mapping : dict
        The configuration: nested dicts of scalars and flat lists.
    preamble : sequence of str
        Lines written first, as comments.
    docs : dict, optional
        ``{"section.key": description}`` (default:
        :data:`allsky_camera.camera.config.KEY_DOCS`).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        A key without a description (a gap in ``docs``, not a user error).
    """
    if docs is None:
        from allsky_camera.camera.config import KEY_DOCS as docs
    lines = [f"# {p}" for p in preamble]
    lines += _lines(mapping, docs, "", 0)
    return "\n".join(lines) + "\n"
