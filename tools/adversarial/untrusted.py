"""Adversarial cases: untrusted files (items 12 and 13; see tools/adversarial/__init__.py).

A hostile SavedModel given to app.predict and app.evaluate, an export whose metadata names where
the report should go, and every kind of file handed back foreign, crafted or cut short: .keras
files, saved_model.pb, metadata.json, config.yaml and a search's JSON state. The files are made
as tests/serving/crafted.py makes them; the tiny run, its export and a one-trial search they are
made from are trained once per replay (~40 s), the first time a case needs them.
"""

import atexit
import glob
import os
import shutil
import tempfile

from tools.adversarial.common import REPO, Case, command, refused_in_one_line, TINY

_SHARED = {}  # what several cases start from, made once: see _run() and _search()
TUNE = ("--config=" + os.path.join(REPO, "configs", "tune_fashion_mnist.py"), "--tuner=random",
        "--max_trials=1", "--config.search.space=optim.learning_rate=log(0.01, 0.1)",
        "--config.data.limit=512", "--config.train.epochs=1", "--config.optim.warmup_epochs=0",
        "--config.model.width=4", "--config.train.batch_size=64",
        "--config.runtime.mixed_precision=float32")


def _root():
  if "root" not in _SHARED:
    _SHARED["root"] = tempfile.mkdtemp(prefix="adversarial-untrusted-")
    atexit.register(shutil.rmtree, _SHARED["root"], True)
  return _SHARED["root"]


def _run():
  """(run dir, its export, a PNG): one tiny app.train run with its export, made once."""
  if "run" not in _SHARED:
    root = _root()
    run_dir, exports = os.path.join(root, "run"), os.path.join(root, "exports")
    result = command("app.train", *TINY, "--config.export.enabled=true", "--config.name=tiny",
                     f"--output_dir={run_dir}", f"--export_dir={exports}", cwd=root)
    if result.returncode != 0:
      raise RuntimeError(f"the tiny run failed: {result.stderr.strip()[-300:]}")
    from PIL import Image  # pylint: disable=g-import-not-at-top
    image = os.path.join(root, "shoe.png")
    Image.new("L", (28, 28), 128).save(image)
    _SHARED["run"] = (run_dir, os.path.join(exports, "tiny", "1"), image)
  return _SHARED["run"]


def _search():
  """A one-trial app.tune search directory (its fingerprint and KerasTuner state), made once."""
  if "search" not in _SHARED:
    search_dir = os.path.join(_root(), "search")
    result = command("app.tune", f"--search_dir={search_dir}", *TUNE, cwd=_root())
    if result.returncode != 0:
      raise RuntimeError(f"the tiny search failed: {result.stderr.strip()[-300:]}")
    _SHARED["search"] = search_dir
  return _SHARED["search"]


def _crafted():
  from app.core import console  # pylint: disable=g-import-not-at-top
  console.quiet_tensorflow()  # crafted imports TensorFlow: without its notes on the replay's lines
  from tests.serving import crafted  # pylint: disable=g-import-not-at-top
  return crafted


def _write(path, text):
  with open(path, "w") as f:
    f.write(text)


def _copy_of_export(work):
  return shutil.copytree(_run()[1], os.path.join(work, "export"))


# === Item 12: a SavedModel is a program ===

def _hostile(work):
  """(hostile SavedModel with our metadata, the file its signatures write)."""
  marker = os.path.join(work, "written_by_the_model")
  return _crafted().hostile_saved_model(os.path.join(work, "hostile"), _run()[1], marker), marker


def _and_not_run(judged, marker):
  held, detail = judged
  if os.path.exists(marker):
    return False, "the model's graph ran: it wrote " + marker
  return held, detail


def predict_hostile(work):
  hostile, marker = _hostile(work)
  return _and_not_run(refused_in_one_line(command("app.predict", f"--model={hostile}", _run()[2]),
                                          "not written by this application", "--trust_model"),
                      marker)


def evaluate_hostile(work):
  hostile, marker = _hostile(work)
  result = command("app.evaluate", f"--model={hostile}",
                   f"--report_dir={os.path.join(work, 'report')}")
  return _and_not_run(refused_in_one_line(result, "not written by this application"), marker)


def hostile_with_our_integrity_record(work):
  hostile, marker = _hostile(work)
  record = os.path.join("assets.extra", "integrity.json")
  shutil.copy(os.path.join(_run()[1], record), os.path.join(hostile, record))
  return _and_not_run(refused_in_one_line(command("app.predict", f"--model={hostile}", _run()[2]),
                                          "saved_model.pb changed"), marker)


def report_where_metadata_points(work):
  """An export whose metadata.json names a victim run_dir (hash recomputed, as a hostile writer
  would): app.evaluate of it alone must not write there; with --report_dir the report goes
  there and only there."""
  export, victim = _copy_of_export(work), os.path.join(work, "victim")
  os.makedirs(victim)
  _crafted().edit_metadata(export, run_dir=victim)
  from app.serving import integrity  # pylint: disable=g-import-not-at-top
  integrity.write(export)
  held, detail = refused_in_one_line(command("app.evaluate", f"--model={export}"),
                                     "--report_dir")
  report = os.path.join(work, "report")
  given = command("app.evaluate", f"--model={export}", f"--report_dir={report}", "--limit=100")
  if os.listdir(victim):
    return False, f"wrote into the metadata's run_dir: {os.listdir(victim)}"
  if given.returncode != 0 or not os.path.isfile(os.path.join(report, "report.md")):
    return False, f"--report_dir: exit {given.returncode}: {given.stderr.strip()[-160:]}"
  return held, detail


# === Item 13: each foreign, crafted or damaged file is one line ===

def _keras(edit):
  def case(work):
    path = os.path.join(work, "crafted.keras")
    _crafted().edited_keras_file(os.path.join(_run()[0], "checkpoints", "best.keras"), path, edit)
    return refused_in_one_line(command("app.evaluate", f"--model={path}", f"--run_dir={_run()[0]}",
                                       f"--report_dir={os.path.join(work, 'report')}"),
                               "crafted.keras")
  return case


def keras_lambda_layer(work):
  import keras  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((28, 28, 1))
  outputs = keras.layers.Dense(10)(keras.layers.Flatten()(
      keras.layers.Lambda(lambda t: t / 255.0)(inputs)))
  path = os.path.join(work, "lambda.keras")
  keras.Model(inputs, outputs).save(path)
  return refused_in_one_line(command("app.evaluate", f"--model={path}", f"--run_dir={_run()[0]}"),
                             "refusing to load", "Python code")


def _both_ways(work, change, *words):
  """`change(export copy)`, then app.predict refused in one line without and with --trust_model
  (the hash check, then the damage itself)."""
  export = _copy_of_export(work)
  change(export)
  checked = refused_in_one_line(command("app.predict", f"--model={export}", _run()[2]),
                                "not as this application exported it")
  trusted = refused_in_one_line(command("app.predict", f"--model={export}", "--trust_model",
                                        _run()[2]), *words)
  return checked[0] and trusted[0], (trusted if checked[0] else checked)[1]


def garbage_saved_model_pb(work):
  return _both_ways(work, lambda e: _write(os.path.join(e, "saved_model.pb"), "garbage" * 20),
                    "cannot load", "SavedModel")


def truncated_metadata_json(work):
  return _both_ways(work, lambda e: _write(os.path.join(e, "assets.extra", "metadata.json"),
                                           '{"class_names": ["T-shirt'), "metadata.json")


def metadata_class_list_mismatch(work):
  names = [f"class{i}" for i in range(9)]  # the model outputs 10 probabilities
  return _both_ways(work, lambda e: _crafted().edit_metadata(e, class_names=names),
                    "names 9 classes but the model outputs 10")


def _run_copy_with_config(work, text):
  run_dir = shutil.copytree(_run()[0], os.path.join(work, "run"))
  _write(os.path.join(run_dir, "config.yaml"), text)
  return run_dir


def config_yaml_python_tag(work):
  marker = os.path.join(work, "constructed")
  run_dir = _run_copy_with_config(work, f"!!python/object/apply:os.system ['touch {marker}']\n")
  judged = refused_in_one_line(command("app.export", f"--run_dir={run_dir}",
                                       f"--export_dir={os.path.join(work, 'exports')}"),
                               "config.yaml")
  return _and_not_run(judged, marker)


def config_yaml_broken(work):
  run_dir = _run_copy_with_config(work, "name: tiny\ndata: {name: [fashion_mnist\n")
  return refused_in_one_line(command("app.evaluate", f"--run_dir={run_dir}"), "config.yaml")


def _search_state(pattern, text):
  def case(work):
    search_dir = shutil.copytree(_search(), os.path.join(work, "search"))
    [path] = glob.glob(os.path.join(search_dir, pattern))
    _write(path, text)
    return refused_in_one_line(command("app.tune", f"--search_dir={search_dir}", *TUNE, cwd=work),
                               os.path.basename(path), "--overwrite")
  return case


CASES = [
    Case(12, "predict_hostile_saved_model", predict_hostile),
    Case(12, "evaluate_hostile_saved_model", evaluate_hostile),
    Case(12, "hostile_saved_model_with_our_integrity_record", hostile_with_our_integrity_record),
    Case(12, "evaluate_report_where_metadata_points", report_where_metadata_points),
    Case(13, "keras_unknown_class", _keras(lambda config: _crafted().unknown_class(config))),
    Case(13, "keras_unsafe_call", _keras(lambda config: _crafted().unsafe_call(config))),
    Case(13, "keras_lambda_layer_safe_mode", keras_lambda_layer),
    Case(13, "garbage_saved_model_pb", garbage_saved_model_pb),
    Case(13, "truncated_metadata_json", truncated_metadata_json),
    Case(13, "metadata_class_list_mismatch", metadata_class_list_mismatch),
    Case(13, "config_yaml_python_tag", config_yaml_python_tag),
    Case(13, "config_yaml_broken", config_yaml_broken),
    Case(13, "truncated_oracle_json", _search_state("kerastuner/oracle.json", '{"ongoing_tr')),
    Case(13, "truncated_trial_json", _search_state("kerastuner/trial_*/trial.json", '{"trial_')),
    Case(13, "truncated_tuner0_json", _search_state("kerastuner/tuner0.json", "")),
    Case(13, "truncated_fingerprint_json", _search_state("fingerprint.json", '{"recipe": {')),
]
