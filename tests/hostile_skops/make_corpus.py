"""Write the corpus of hostile ``.skops`` model files that ``load_model`` must refuse.

Each file is a valid skops archive (protocol 2) shaped like an mmfeat model file, whose model
reaches code through a name that *starts* with ``mmfeat.`` but is not one of mmfeat's estimator
classes: a module mmfeat imports (``os``, ``sys``, ``importlib``), a function of mmfeat's own
that writes files (``save_model``, the CLI), or builtins. Several would act while being built,
so a loader that builds before it checks is caught by the files they leave in the working
directory. Run ``python tests/hostile_skops/make_corpus.py`` to write them again.
"""

from __future__ import annotations

import itertools
import json
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_ids = itertools.count(1)


def _node(loader, module, cls, **extra):
    return {"__class__": cls, "__module__": module, "__loader__": loader, "__id__": next(_ids),
            **extra}


def json_value(value):
    return _node("JsonNode", "builtins", type(value).__name__, content=json.dumps(value),
                 is_json=True)


def tuple_of(*items):
    return _node("TupleNode", "builtins", "tuple", content=list(items))


def list_of(*items):
    return _node("ListNode", "builtins", "list", content=list(items))


def dict_of(**items):
    keys = [_node("TypeNode", "builtins", "str") for _ in items]
    return _node("DictNode", "builtins", "dict", content=items, key_types=list_of(*keys))


def function(module, name):
    """What ``getattr(import_module(module), name)`` gives: a function, a class or a module."""
    return _node("FunctionNode", module, name)


def method(module, name, func):
    """``getattr(<function(module, name)>, func)``: e.g. ``os.system`` reached through mmfeat."""
    return _node("MethodNode", module, name, content={"func": func, "obj": function(module, name)})


def call(module, name, *args):
    """``getattr(import_module(module), name)(*args)``, run while the file is being built."""
    return _node("ConstructorFromReduceNode", module, name, content=tuple_of(*args))


def estimator(module, cls, **attrs):
    return _node("ObjectNode", module, cls, content=dict_of(**attrs))


def function_transformer(func, **kw):
    return estimator("sklearn.preprocessing._function_transformer", "FunctionTransformer",
                     func=func, kw_args=dict_of(**kw), validate=json_value(False),
                     accept_sparse=json_value(False), check_inverse=json_value(False))


def model_file(model):
    """The payload ``save_model`` writes, holding ``model``."""
    schema = dict_of(format=json_value("mmfeat-model"), format_version=json_value(1),
                     mmfeat_version=json_value("0.1.0"), extractors=dict_of(), model=model)
    schema.update(protocol=2, _skops_version="0.16.0")
    return schema


# name -> (payload, the untrusted type name the refusal must report)
CORPUS = {
    # save_model(obj, path) called while loading: overwrites any file the user can write.
    "save_model_overwrites_a_file": (
        call("mmfeat.modelfile", "save_model", json_value("pwned"), json_value("victim.txt")),
        "mmfeat.modelfile.save_model",
    ),
    # os.system, reached as an attribute of an mmfeat module, as a transformer's function.
    "os_system_through_scoring": (
        function_transformer(method("mmfeat.scoring", "os", "system")),
        "mmfeat.scoring.os.system",
    ),
    # importlib.import_module through the registry: the way to any module, subprocess included.
    "import_module_through_registry": (
        function_transformer(method("mmfeat.registry", "importlib", "import_module"),
                             name=json_value("subprocess")),
        "mmfeat.registry.importlib.import_module",
    ),
    # sys.exit through the CLI module, called while loading.
    "sys_through_cli": (call("mmfeat.cli", "sys", json_value(3)), "mmfeat.cli.sys"),
    # builtins through a module's namespace.
    "builtins_through_io": (
        function_transformer(method("mmfeat.io", "__builtins__", "get")),
        "mmfeat.io.__builtins__.get",
    ),
    # The CLI's main(), called while loading: makes a cache store in the working directory.
    "cli_main_writes_files": (
        call("mmfeat.cli", "main", list_of(json_value("cache"), json_value("clear"),
                                           json_value("--dir"), json_value("pwned_cache"))),
        "mmfeat.cli.main",
    ),
    # A real mmfeat class name with the file-writing call hidden in its attributes.
    "hostile_call_inside_a_trusted_class": (
        estimator("mmfeat.fusion.late", "LateFusionClassifier",
                  cv=call("mmfeat.modelfile", "save_model", json_value("pwned"),
                          json_value("victim.txt"))),
        "mmfeat.modelfile.save_model",
    ),
    # The trusted log-loss scorer class, holding another function than log loss.
    "scorer_with_another_function": (
        estimator("sklearn.metrics._scorer", "_Scorer",
                  _score_func=method("mmfeat.scoring", "os", "system"), _sign=json_value(1)),
        "mmfeat.scoring.os.system",
    ),
    # A class name that only looks like mmfeat's (same prefix, another module).
    "lookalike_class": (estimator("mmfeat.fusion.late.os", "PathLike"),
                        "mmfeat.fusion.late.os.PathLike"),
}


def write_corpus(folder: Path = HERE) -> list[Path]:
    paths = []
    for name, (model, _) in CORPUS.items():
        path = folder / f"{name}.skops"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("schema.json", json.dumps(model_file(model), indent=1))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_corpus():
        print(p)
