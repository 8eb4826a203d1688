"""Looking inside a model: the mmfeat extractors it holds (as given and as fitted), switching
their error policy in one call, and the installed mmfeat version."""

from __future__ import annotations

__all__ = ["Findable", "find_extractors", "package_version", "set_on_error"]


class Findable:
    """The mark of an mmfeat extractor, which :func:`find_extractors` and :func:`set_on_error`
    look for. :class:`mmfeat.base.Extractor` carries it, so that this module, which the package
    imports first (for its version), needs nothing from the extractor machinery."""

    __slots__ = ()


def package_version() -> str:
    """mmfeat's version, from the installed package's metadata (``pyproject.toml``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmfeat")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def find_extractors(model) -> dict:
    """Every :class:`mmfeat.base.Extractor` inside ``model``, by name.

    Extractors are looked up through ``get_params(deep=True)`` (named by their deep parameter
    name, e.g. ``"features__image"``) and through fitted attributes (the fitted clones a
    ``ColumnTransformer`` keeps in ``transformers_``, named e.g.
    ``"features.transformers_[image]"``). The same object is listed once.

    Parameters
    ----------
    model : estimator

    Returns
    -------
    dict of str -> Extractor
    """
    found: dict = {}
    seen: set = set()

    def add(name, obj):
        if id(obj) not in seen:
            seen.add(id(obj))
            found[name] = obj

    def visit_fitted(obj, path, depth=0):
        """Look into the fitted attributes (``name_``) of an estimator for more extractors."""
        if depth > 20:
            return
        for attr, value in sorted(vars(obj).items()):
            if attr.endswith("_") and not attr.startswith("_") and not attr.endswith("__"):
                walk(value, f"{path}.{attr}" if path else attr, depth + 1)

    def walk(value, path, depth):
        if depth > 20 or isinstance(value, (str, bytes, int, float, type(None))):
            return
        if isinstance(value, Findable):
            add(path, value)
            return
        if hasattr(value, "get_params") and not isinstance(value, type):
            if id(value) in seen:
                return
            seen.add(id(value))
            try:
                params = value.get_params(deep=True)
            except Exception:  # a half-built or odd estimator: its fitted attributes still count
                params = {}
            for name, sub in params.items():
                if isinstance(sub, Findable):
                    add(f"{path}__{name}" if path else name, sub)
            for name, sub in params.items():
                if hasattr(sub, "get_params") and not isinstance(sub, (type, Findable)):
                    visit_fitted(sub, f"{path}__{name}" if path else name, depth)
            visit_fitted(value, path, depth)
            return
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f"{path}[{key}]", depth + 1)
        elif isinstance(value, (list, tuple)):
            for i, sub in enumerate(value):
                if isinstance(sub, tuple) and len(sub) >= 2 and isinstance(sub[0], str):
                    walk(sub[1], f"{path}[{sub[0]}]", depth + 1)  # (name, estimator, ...) tuples
                else:
                    walk(sub, f"{path}[{i}]", depth + 1)

    if isinstance(model, Findable):
        return {type(model).__name__: model}
    walk(model, "", 0)
    return found


def set_on_error(model, on_error="nan", *, verbose=None):
    """Set ``on_error`` (and ``verbose``, unless None) on every extractor inside ``model``: the
    extractors as given (through nested parameters, so clones made later follow) and the
    fitted clones a ``ColumnTransformer`` or a fusion estimator keeps. Returns ``model``.

    Batch scoring uses it so that a bad item costs its own row, not the chunk.
    """
    settings = {"on_error": on_error, **({} if verbose is None else {"verbose": verbose})}
    try:
        deep = [k for k, v in model.get_params(deep=True).items() if isinstance(v, Findable)]
    except Exception:  # an estimator whose get_params fails: its fitted extractors still count
        deep = []
    if deep:
        model.set_params(**{f"{k}__{name}": value for k in deep
                            for name, value in settings.items()})
    for extractor in find_extractors(model).values():
        params = extractor.get_params(deep=False)
        extractor.set_params(**{k: v for k, v in settings.items() if k in params})
    return model
