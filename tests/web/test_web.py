"""The JavaScript runtime and the sampling page, with the real components: `edgevae web` / `serve`,
onnxruntime-node under Node's test runner (web/test/*.test.mjs) and onnxruntime-web in Debian's headless
Chromium (driven by web/test/browser.mjs with playwright-core). Goldens come from the Python runtime
(web/test/make_golden.py). The quick tests check where `edgevae web` takes onnxruntime-web from
(runtime/site/ort_web.py) with stand-ins for the package and npm; the heavy ones skip, saying why, where node,
chromium or web/node_modules are missing (`ONNXRUNTIME_NODE_INSTALL=skip npm ci` in web/, `apt-get install
chromium`). EDGEVAE_TEST_ARTIFACTS=DIR keeps the page's screenshot there (default: the test's tmp_path)."""

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

import pytest

from edgevae.runtime.site import ort_web
from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR, load
from edgevae.runtime.site.page import MARKER, SITE_JSON, write_site
from helpers import flip_byte, resign, run_cli

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
NODE_MODULES = WEB / "node_modules"
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LOCK = ort_web.locked(WEB)
heavy = pytest.mark.heavy  # end-to-end runs: in CI (scripts/test.sh), not in a bare `pytest`
need_node = pytest.mark.skipif(not NODE or not (NODE_MODULES / "onnxruntime-node").is_dir(),
                               reason="needs node and web/node_modules (ONNXRUNTIME_NODE_INSTALL=skip npm ci in web/)")
need_ort_web = pytest.mark.skipif(not (NODE_MODULES / "onnxruntime-web").is_dir() or not shutil.which("npm"),
                                  reason="needs npm and web/node_modules (ONNXRUNTIME_NODE_INSTALL=skip npm ci in web/)")
need_chromium = pytest.mark.skipif(not NODE or not Path(CHROMIUM).is_file() or not (NODE_MODULES / "playwright-core").is_dir(),
                                   reason=f"needs node, {CHROMIUM} (apt-get install chromium) and web/node_modules/playwright-core")


# --- where onnxruntime-web comes from (quick: stand-ins for the package and for npm) ---

def _fake_package(root: Path, version: str = LOCK.version) -> Path:
    """root/onnxruntime-web: package.json of that version and each file the page loads (its name as content)."""
    package = root / ort_web.PACKAGE
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": ort_web.PACKAGE, "version": version}))
    for name in ort_web.FILES:
        (package / "dist" / name).write_bytes(name.encode())
    return package


def _tarball(path: Path, package: Path, link: str | None = None) -> str:
    """An npm-style tarball (package/...) of package at path; its SRI integrity. link: a file made a symlink."""
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(package.rglob("*")):
            name = "package/" + file.relative_to(package).as_posix()
            if file.name == link:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            elif file.is_file():
                tar.add(file, name)
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """`npm` on PATH that packs tmp_path/pack.tgz when its exit file says 0 (as npm pack --json does)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"""#!{sys.executable}
import json, shutil, sys
args = sys.argv[1:]
open({str(tmp_path / 'args')!r}, 'w').write(json.dumps(args))
code = int(open({str(tmp_path / 'exit')!r}).read())
if code == 0:
    shutil.copyfile({str(tmp_path / 'pack.tgz')!r}, args[args.index('--pack-destination') + 1] + '/x.tgz')
    print(json.dumps([{{"filename": "x.tgz"}}]))
sys.exit(code)
""")
    npm.chmod(0o755)
    (tmp_path / "exit").write_text("0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def test_ort_web_from_a_folder_is_the_locked_version(tmp_path):
    _fake_package(tmp_path / "node_modules")
    for folder in (tmp_path / "node_modules", tmp_path / "node_modules" / ort_web.PACKAGE):  # either is accepted
        files = ort_web.from_folder(folder, LOCK)
        assert files == {name: name.encode() for name in ort_web.FILES}
    _fake_package(tmp_path / "old", version="1.0.0")
    with pytest.raises(ort_web.OrtWebError, match=f"holds onnxruntime-web 1.0.0; .* {LOCK.version} "):
        ort_web.from_folder(tmp_path / "old", LOCK)
    with pytest.raises(ort_web.OrtWebError, match="no onnxruntime-web package there"):
        ort_web.from_folder(tmp_path, LOCK)
    (tmp_path / "node_modules" / ort_web.PACKAGE / "dist" / ort_web.FILES[1]).unlink()
    with pytest.raises(ort_web.OrtWebError, match="is missing"):
        ort_web.from_folder(tmp_path / "node_modules", LOCK)


def test_ort_web_from_the_npm_cache_is_offline_and_checked_against_the_lock(tmp_path, fake_npm):
    integrity = _tarball(tmp_path / "pack.tgz", _fake_package(tmp_path / "src"))
    lock = ort_web.Locked(LOCK.version, f"sha1-ignored {integrity}")
    assert ort_web.find_files(None, lock) == {name: name.encode() for name in ort_web.FILES}
    args = json.loads((tmp_path / "args").read_text())
    assert args[:2] == ["pack", f"onnxruntime-web@{LOCK.version}"] and "--offline" in args and "--ignore-scripts" in args
    # bytes the lock file does not know are refused, whatever npm says
    with pytest.raises(ort_web.OrtWebError, match="does not match the lock file's integrity"):
        ort_web.find_files(None, ort_web.Locked(LOCK.version, LOCK.integrity))
    # a wanted file that is a link in the tarball is refused
    integrity = _tarball(tmp_path / "pack.tgz", tmp_path / "src" / ort_web.PACKAGE, link=ort_web.FILES[0])
    with pytest.raises(ort_web.OrtWebError, match="not a regular file"):
        ort_web.find_files(None, ort_web.Locked(LOCK.version, integrity))
    (tmp_path / "exit").write_text("1")  # npm: ENOTCACHED
    with pytest.raises(ort_web.OrtWebError, match=rf"not in the npm cache: run `npm cache add onnxruntime-web@{LOCK.version}`"):
        ort_web.find_files(None, lock)


def test_ort_web_without_npm_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ort_web.OrtWebError, match="npm is not installed: run `npm cache add onnxruntime-web@.*--ort-web DIR"):
        ort_web.find_files(None, LOCK)


def test_the_lock_file_pins_onnxruntime_web_and_the_page_files_are_installed():
    assert LOCK.version.count(".") == 2 and LOCK.integrity.startswith("sha512-")
    from edgevae.runtime.site.page import PAGE_FILES, web_dir

    assert all((web_dir() / name).is_file() for name in PAGE_FILES)
    assert set(ort_web.FILES) == {f for b in ort_web.BUNDLES.values() for f in (b["module"], b["wasm"])} | {
        "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.asyncify.mjs"}


def test_js_verify_applies_the_python_rule_and_cap():
    """web/verify.js recomputes runtime/device/golden.py's tolerance rule and cap with its own copy of the constants."""
    import re

    from edgevae.runtime.device import golden

    text = (WEB / "verify.js").read_text()
    block = re.search(r"export const RULE = \{(.*?)\};", text, re.S).group(1)
    js = {name: eval(value, {}) for name, value in re.findall(r"(\w+): ([^,]+),", block)}  # noqa: S307 (our file)
    assert js == {name: getattr(golden, name) for name in
                  ("SAFETY_FACTOR", "REFERENCE_FACTOR", "FLOOR", "PARITY_TOLERANCE", "QUANTIZED_CAP_STEPS")}


def _js_constant(file: str, name: str):
    """The value of `export const NAME = <JSON literal>;` in a web/ module."""
    import re

    text = (WEB / file).read_text()
    return json.loads(re.search(rf"export const {name} = (.*?);\n", text, re.S).group(1))


def test_js_conventions_and_messages_are_the_python_runtimes():
    """web/ keeps its own copy of what a manifest's conventions may hold and of the no-prior message: equal to Python's."""
    from edgevae.runtime.contract import manifest as contract
    from edgevae.runtime.inference.vae import NO_PRIOR

    assert _js_constant("vae.js", "NO_PRIOR") == NO_PRIOR
    assert [tuple(r) for r in _js_constant("manifest.js", "PIXEL_RANGES")] == list(contract.PIXEL_RANGES)
    for name in ("DECODER_HEADS", "POSTERIORS", "PRIORS"):
        assert tuple(_js_constant("manifest.js", name)) == getattr(contract, name), name


def _node_eval(code: str, payload) -> object:
    """Run an ES module snippet with web/'s modules importable as WEB; it reads `payload` (JSON) from stdin and
    prints one JSON value."""
    script = f"const WEB = {json.dumps(WEB.as_uri())};\nconst payload = JSON.parse(require_stdin());\n{code}"
    script = script.replace("require_stdin()", "(await import('node:fs')).readFileSync(0, 'utf8')")
    out = subprocess.run([NODE, "--input-type=module", "-e", script], input=json.dumps(payload), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _manifest_cases() -> list:
    """(name, manifest JSON) pairs: the shipped manifest with latent_shape, conventions and io changed, valid or not."""
    base = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())  # latent_dim 64, image_shape [1, 28, 28]
    spatial = {"latent_shape": [4, 4, 4]}
    signed = {"pixel_range": [-1, 1], "decoder_head": "image"}
    deterministic_io = {"encoder": {"inputs": ["x"], "outputs": ["z"]}, "decoder": base["io"]["decoder"]}
    edits = {
        "classic": {}, "empty conventions": {"conventions": {}}, "null conventions": {"conventions": None},
        "signed image": {"conventions": signed}, "range 0..2": {"conventions": {"pixel_range": [0, 2]}},
        "range of 1": {"conventions": {"pixel_range": [0]}}, "null range": {"conventions": {"pixel_range": None}},
        "signed bernoulli": {"conventions": {"pixel_range": [-1, 1]}},
        "gaussian no scale": {"conventions": {"decoder_head": "gaussian_mean"}},
        "gaussian": {"conventions": {"decoder_head": "gaussian_mean", "decoder_scale": 0.1}},
        "gaussian scale 0": {"conventions": {"decoder_head": "gaussian_mean", "decoder_scale": 0}},
        "means with scale": {"conventions": {"decoder_scale": 0.1}},
        "softmax": {"conventions": {"decoder_head": "softmax"}}, "head 3": {"conventions": {"decoder_head": 3}},
        "logits": {"conventions": {"decoder_head": "bernoulli_logits"}},
        "deterministic, 2 outputs": {"conventions": {"posterior": "deterministic"}},
        "deterministic": {"conventions": {"posterior": "deterministic"}, "io": deterministic_io},
        "gaussian, 1 output": {"io": deterministic_io}, "null posterior": {"conventions": {"posterior": None}},
        "no prior": {"conventions": {"prior": "none"}}, "uniform prior": {"conventions": {"prior": "uniform"}},
        "scale 0": {"conventions": {"latent_scale": 0}}, "scale -1": {"conventions": {"latent_scale": -1}},
        "scale string": {"conventions": {"latent_scale": "1"}}, "scale and shift": {"conventions": {"latent_scale": 0.18, "latent_shift": 0.5}},
        "factor 7": {**spatial, "conventions": {"downsampling": 7}}, "factor 2": {**spatial, "conventions": {"downsampling": 2}},
        "factor 0": {**spatial, "conventions": {"downsampling": 0}}, "factor 2000": {**spatial, "conventions": {"downsampling": 2000}},
        "factor 2.5": {**spatial, "conventions": {"downsampling": 2.5}}, "factor true": {**spatial, "conventions": {"downsampling": True}},
        "factor, flat latent": {"conventions": {"downsampling": 7}},
        "field 0": {"conventions": {"receptive_field": 0}}, "field 3": {"conventions": {"receptive_field": 3}},
        "field null": {"conventions": {"receptive_field": None}}, "conventions string": {"conventions": "x"},
        "latent 4x4x4": spatial, "latent [64]": {"latent_shape": [64]}, "latent null": {"latent_shape": None},
        "latent rank 2": {"latent_shape": [8, 8]}, "latent 80": {"latent_shape": [4, 4, 5]},
        "latent zero": {"latent_shape": [0, 8, 8]}, "latent string": {"latent_shape": ["a"]},
        "latent rank 4": {"latent_shape": [1, 4, 4, 4]}, "latent not a list": {"latent_shape": 64},
    }
    return [(name, {**base, **edit}) for name, edit in edits.items()]


@pytest.mark.skipif(not NODE, reason="needs node")
def test_js_accepts_and_refuses_the_manifests_python_does():
    """manifest.js against runtime/contract/manifest.py on the same manifest.json edits (latent_shape, every field of
    conventions, io for a deterministic encoder): the same verdict on each, and the JS refusal names the field."""
    from edgevae.runtime.contract.manifest import parse_manifest

    cases = _manifest_cases()
    js = _node_eval("""const { parseManifest } = await import(WEB + "/manifest.js");
const out = payload.map(([name, m]) => { try { parseManifest(m); return null; } catch (err) { return err.name + ": " + err.message; } });
console.log(JSON.stringify(out));""", cases)
    for (name, obj), refused in zip(cases, js):
        try:
            parse_manifest(obj)
            python = None
        except ValueError as err:
            python = str(err)
        assert (python is None) == (refused is None), f"{name}: Python {python!r}, JS {refused!r}"
        if refused:
            assert refused.startswith("ModelDirError: ") and ("conventions" in refused or "latent_shape" in refused
                                                              or "io.encoder" in refused), (name, refused)
    assert sum(r is None for r in js) >= 10 and sum(r is not None for r in js) >= 20  # both kinds exercised


@pytest.mark.skipif(not NODE, reason="needs node")
def test_js_batch_buckets_follow_the_manifests_selection_rule():
    """manifest.js forBatch (the rule `auto` applies to its measured choice) picks what ModelDir.variant_for picks from
    the same {batch size: variant} tables, at every batch size from 1 to 300."""
    import dataclasses


    from edgevae.runtime.inference.selection import variant_for

    model = load(DEFAULT_MODEL_DIR)
    names = sorted(model.manifest.variants)
    tables = [{"1": names[0]}, {"8": names[-1]}, {"1": names[0], "64": names[-1]},
              {str(k): names[i % len(names)] for i, k in enumerate((3, 17, 64, 200))}, {"256": names[0], "2": names[-1]}]
    sizes = list(range(1, 301))
    js = _node_eval("""const { forBatch } = await import(WEB + "/manifest.js");
console.log(JSON.stringify(payload.tables.map((t) => payload.sizes.map((n) => forBatch(t, n)))));""", {"tables": tables, "sizes": sizes})
    for table, picked in zip(tables, js):
        selected = dataclasses.replace(model.manifest, selection={"decoder": table})
        assert picked == [variant_for(selected, "auto", batch=n, graph="decoder") for n in sizes], table


@pytest.mark.skipif(not NODE, reason="needs node")
def test_js_convention_maps_are_the_python_runtimes():
    """conventions.js against runtime/contract/conventions.py and VAERuntime's latent maps, on the same float32 values,
    for every decoder head and pixel range and a scaled, shifted latent: equal bit for bit except the sigmoid of
    logits, where numpy's float32 exp and V8's float64 exp rounded once may differ by an ulp, which 1 + exp(-y) turns
    into one of [1, 2)'s (2^-23) before the reciprocal."""
    from types import SimpleNamespace

    import numpy as np

    from edgevae.runtime.contract.conventions import to_pixels, to_unit
    from edgevae.runtime.contract.manifest import Conventions
    from edgevae.runtime.inference.vae import VAERuntime

    values = np.concatenate([np.random.default_rng(0).standard_normal(2000, dtype=np.float32) * 3,
                             np.float32([-200, -88.8, -30, 0, 1e-8, 30, 88.8, 200])])
    unit = np.random.default_rng(1).random(500, dtype=np.float32)
    cases = [Conventions(), Conventions(decoder_head="bernoulli_logits"), Conventions(decoder_head="image"),
             Conventions(pixel_range=(-1.0, 1.0), decoder_head="image"),
             Conventions(pixel_range=(-1.0, 1.0), decoder_head="gaussian_mean", decoder_scale=0.1, latent_scale=0.18215,
                         latent_shift=0.0609), Conventions(latent_scale=3.0)]
    payload = [{"c": {"pixelRange": list(c.pixel_range), "decoderHead": c.decoder_head, "latentScale": c.latent_scale,
                      "latentShift": c.latent_shift}} for c in cases]
    js = _node_eval("""const m = await import(WEB + "/conventions.js");
const y = Float32Array.from(payload.values), x = Float32Array.from(payload.unit);
console.log(JSON.stringify(payload.cases.map(({ c }) => {
  const [mu, logvar] = m.fromGraphLatent(y, y, c);
  return [m.toUnit(Float32Array.from(y), c), m.toPixels(x, c), m.toGraphLatent(y, c), mu, logvar].map((a) => Array.from(a));
})));""", {"cases": payload, "values": values.tolist(), "unit": unit.tolist()})
    for c, got in zip(cases, js):
        rt = SimpleNamespace(conventions=c)
        mu, logvar = VAERuntime._from_graph_latent(rt, values.copy(), values.copy())
        want = [to_unit(values.copy(), c), to_pixels(unit, c), VAERuntime._to_graph_latent(rt, values), mu, logvar]
        for name, a, b in zip(("to_unit", "to_pixels", "to_graph_latent", "mu", "logvar"), got, want):
            diff = float(np.abs(np.float32(a) - b).max())
            assert diff <= (2.0 ** -23 if name == "to_unit" and c.decoder_head == "bernoulli_logits" else 0.0), (c, name, diff)


TSC = NODE_MODULES / "typescript" / "bin" / "tsc"


@pytest.mark.skipif(not NODE or not TSC.is_file(), reason="needs node and web/node_modules/typescript (npm ci in web/)")
def test_the_js_runtime_type_checks():
    """Every module of web/ is in web/tsconfig.json and marked // @ts-check, and TypeScript's checker (checkJs,
    the JSDoc types) finds no error in them: a wrong argument or field name fails here, not in a browser."""
    config = json.loads((WEB / "tsconfig.json").read_text())
    modules = sorted(p.name for p in [*WEB.glob("*.js"), *WEB.glob("*.mjs")])
    assert sorted(config["include"]) == modules
    unmarked = [m for m in modules if "// @ts-check" not in (WEB / m).read_text().splitlines()[:2]]
    assert not unmarked, f"no // @ts-check at the top of {unmarked}"
    out = subprocess.run([NODE, str(TSC), "-p", str(WEB / "tsconfig.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"tsc exit {out.returncode}:\n{out.stdout}{out.stderr}"


# --- Node ---

@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_golden", WEB / "test" / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_golden(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def any_vae(tmp_path_factory):
    """Model dirs of other families exported by edgevae's exporter, with the Python runtime's outputs on them
    (web/test/make_any_vae.py: "signed", an RGB [-1, 1] spatial-latent VAE; "tiny", deterministic without a prior)."""
    pytest.importorskip("torch", reason="make_any_vae.py exports with torch (the export extra)")
    spec = importlib.util.spec_from_file_location("make_any_vae", WEB / "test" / "make_any_vae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_all(tmp_path_factory.mktemp("any_vae"))


@heavy
@need_node
def test_node_runtime_parity_tamper_verify_and_inputs(golden, any_vae):
    env = {**os.environ, "EDGEVAE_GOLDEN": str(golden), "EDGEVAE_ANY_VAE": str(any_vae)}
    files = sorted(str(p.relative_to(WEB)) for p in (WEB / "test").glob("*.test.mjs"))
    out = subprocess.run([NODE, "--test", "--test-reporter=tap", *files], cwd=WEB, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout and "# skipped 0" in out.stdout and "# pass 0" not in out.stdout
    parity = json.loads(out.stdout.split("# parity ", 1)[1].splitlines()[0])
    assert parity["fp32"]["decode"] <= 1e-5 and set(parity) >= {"fp32", "int8"}
    assert out.stdout.count("# any-vae ") == 4  # both families' parity and tiled reports: their tests ran
    print("\n" + "\n".join(line for line in out.stdout.splitlines() if "# any-vae " in line))


def _initializer_offset(path: Path) -> int:
    """The high byte (sign and exponent) of the first float of the largest initializer: flipping it moves the
    outputs by far more than any golden tolerance (tests/runtime/test_device.py does the same in Python)."""
    import onnx

    data = path.read_bytes()
    tensor = max(onnx.load_model_from_string(data).graph.initializer, key=lambda t: len(t.raw_data))
    offset = data.find(tensor.raw_data)
    assert offset > 0 and data.find(tensor.raw_data, offset + 1) == -1
    return offset + 3


@heavy
@need_node
def test_node_verify_fails_on_a_flipped_weight_whose_hash_was_resigned(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    flip_byte(model / "decoder.onnx", _initializer_offset(model / "decoder.onnx"))
    resign(model, "decoder.onnx")
    out = subprocess.run([NODE, str(WEB / "verify-cli.mjs"), str(model)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.count(" NO") == 1 and "decoder  fp32" in out.stdout
    assert out.stdout.strip().splitlines()[-1].startswith("FAIL: 1 of 4") and "decoder fp32" in out.stdout.splitlines()[-1]


# --- `edgevae web` and `serve` ---

@heavy
@need_ort_web
def test_web_writes_a_site_from_the_npm_cache_and_replaces_only_its_own(tmp_path):
    site = tmp_path / "site"
    out = run_cli("web", "--out", str(site))  # onnxruntime-web from the npm cache that `npm ci` filled
    assert out.returncode == 0, out.stderr
    for name in ("index.html", "page.js", "vae.js", "verify.js", "cache.js", "model/manifest.json", SITE_JSON, MARKER):
        assert (site / name).is_file(), name
    assert (site / "model" / "decoder.onnx").read_bytes() == (DEFAULT_MODEL_DIR / "decoder.onnx").read_bytes()
    listed = json.loads((site / SITE_JSON).read_text())["onnxruntime_web"]
    assert listed["version"] == LOCK.version and set(listed["files"]) == set(ort_web.FILES)
    for name, entry in listed["files"].items():  # what the page checks each file against
        data = (site / "ort" / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        assert data == (NODE_MODULES / "onnxruntime-web" / "dist" / name).read_bytes()
    (site / "stale.txt").write_text("x")
    write_site(site, ort_web_dir=NODE_MODULES)  # a second write replaces the first, whole
    assert not (site / "stale.txt").exists() and (site / "index.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name != "site"]  # no temp folders left
    other = tmp_path / "other"
    other.mkdir()
    out = run_cli("web", "--out", str(other), "--ort-web", str(NODE_MODULES))
    assert out.returncode == 2 and "not a site written by `edgevae web`" in out.stderr and out.stderr.count("\n") == 1


@heavy
@need_ort_web
def test_web_refuses_a_tampered_model_and_says_what_to_install(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    flip_byte(model / "decoder.int8.onnx")
    out = run_cli("web", "--model", str(model), "--out", str(tmp_path / "site"), "--ort-web", str(NODE_MODULES))
    assert out.returncode == 2 and "decoder.int8.onnx" in out.stderr and "sha256" in out.stderr
    empty = tmp_path / "npm-cache"
    out = run_cli("web", "--out", str(tmp_path / "site"), env={**os.environ, "npm_config_cache": str(empty)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"npm cache add onnxruntime-web@{LOCK.version}" in out.stderr and "--ort-web DIR" in out.stderr
    assert not (tmp_path / "site").exists()


class Server:
    """`edgevae serve --site SITE --port 0` in a subprocess; .url once it listens."""

    def __init__(self, site):
        self.proc = subprocess.Popen([sys.executable, "-m", "edgevae", "serve", "--site", str(site), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert " at http://127.0.0.1:" in line, line + self.proc.stderr.read()
        self.url = line.split(" at ", 1)[1].split()[0]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not (NODE_MODULES / "onnxruntime-web").is_dir():
        pytest.skip("needs web/node_modules (ONNXRUNTIME_NODE_INSTALL=skip npm ci in web/)")
    root = tmp_path_factory.mktemp("sites")
    good, tampered = write_site(root / "good", ort_web_dir=NODE_MODULES), write_site(root / "tampered", ort_web_dir=NODE_MODULES)
    flip_byte(tampered / "model" / "decoder.onnx", 100)
    resigned_model = root / "resigned-model"  # a weight changed and the hash re-signed: only the goldens can tell
    shutil.copytree(DEFAULT_MODEL_DIR, resigned_model)
    flip_byte(resigned_model / "decoder.onnx", _initializer_offset(resigned_model / "decoder.onnx"))
    resign(resigned_model, "decoder.onnx")
    resigned = write_site(root / "resigned", resigned_model, ort_web_dir=NODE_MODULES)
    servers = {"good": Server(good), "tampered": Server(tampered), "resigned": Server(resigned)}
    yield servers
    for server in servers.values():
        server.close()


@heavy
@need_ort_web
def test_serve_sends_isolation_headers_on_loopback(served):
    assert served["good"].url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(served["good"].url + "ort/ort-wasm-simd-threaded.wasm") as response:
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert response.headers["Content-Type"] == "application/wasm"
    out = run_cli("serve", "--port", "70000")
    assert out.returncode == 2 and "--port must be in 0..65535" in out.stderr


def _browse(url, *args, timeout=240):
    out = subprocess.run([NODE, str(WEB / "test" / "browser.mjs"), url, *args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@heavy
@need_chromium
def test_page_draws_64_samples_equal_to_python_and_verifies_its_goldens(served, golden, tmp_path):
    shot = Path(os.environ.get("EDGEVAE_TEST_ARTIFACTS", tmp_path)) / "page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    report = _browse(served["good"].url + "?fresh=1", "--golden", str(golden), "--screenshot", str(shot), "--interact")
    assert report["state"] == "ready" and report["error"] is None and not report["errorVisible"], report
    assert report["tiles"] == 64 and report["gridPixels"] == [1, 28, 28]
    assert report["crossOriginIsolated"] is True and report["logs"] == []
    assert "onnxruntime-web" in report["runtime"] and set(report["choice"]["choice"]) == {"1", "64"}
    assert report["parity"]["fp32"] <= 1e-5
    # int8: wasm's kernels against the graph run unfused (make_golden.py), within the tolerance the model dir
    # itself states for int8 kernels: quantize measured how far fused kernels land from that reference path
    # (a requantization tie moves an activation one step: 0.0042 here for the shipped decoder, 1e-7 for an
    # earlier one). The Python runtime's int8 output is reported, not required (AVX2 kernels without VNNI).
    tolerance = load(DEFAULT_MODEL_DIR).manifest.golden.tolerance["int8"]["decoder"]
    assert report["parityUnfused"]["int8"] <= tolerance
    assert report["pixelDiff"]["fp32"] <= 1 and report["latentsEqualNode"] is True
    # the page ran the goldens of every variant here and says so
    assert {(c["variant"], c["graph"]) for c in report["checks"]} == {(v, g) for v in ("fp32", "int8") for g in ("encoder", "decoder")}
    assert all(c["passed"] for c in report["checks"]) and report["verifiedText"].startswith("verified: the goldens of fp32, int8")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    interact = report["interact"]  # a new seed redraws sample(64, seed); a bad seed is reported, the grid stays
    assert interact["redrawn"] and interact["equalsSample"] and interact["gridStillVisible"], interact
    assert "seed must be an integer in [0, 2^53)" in interact["badSeedStatus"], interact
    print(f"\nweb parity {json.dumps({k: report[k] for k in ('parity', 'parityUnfused', 'pixelDiff', 'firstGridMs')})} screenshot {shot}")


@heavy
@need_chromium
def test_second_visit_reads_runtime_and_model_from_the_cache_and_refetches_what_changed(tmp_path):
    site = write_site(tmp_path / "site", ort_web_dir=NODE_MODULES)
    profile = tmp_path / "profile"
    server = Server(site)
    try:
        report = _browse(server.url, "--visits", "2", "--profile", str(profile))
        first, second = report["visits"]
        for visit in (first, second):
            assert visit["state"] == "ready" and visit["logs"] == [], visit
        big = ("ort-wasm-simd-threaded.wasm", "decoder.onnx", "decoder.int8.onnx", "encoder.onnx")
        assert {f["file"].split("/")[-1] for f in first["files"] if f["from"] == "network"} >= set(big)
        assert second["files"] and all(f["from"] == "cache" for f in second["files"]), second["files"]
        # over the wire on the second visit: the page's modules, site.json and manifest.json (revalidated, or sent
        # again whole by a server without validators, as edgevae serve is today: ~170 KB), never the 18 MB of
        # wasm, graphs and goldens
        assert not [r for r in second["network"]["requests"] if r[0].endswith((".wasm", ".onnx", ".npy"))], second["network"]
        assert second["network"]["bytes"] * 50 < first["network"]["bytes"], (first["network"]["bytes"], second["network"]["bytes"])
        assert second["choice"] == first["choice"] and "auto" not in second["timings"]  # measured once, kept

        # a changed model dir: its changed file is fetched again (and the cache keeps serving the rest)
        import onnx

        model = tmp_path / "model"
        shutil.copytree(DEFAULT_MODEL_DIR, model)
        proto = onnx.load(model / "decoder.onnx")
        proto.doc_string = "the same graph, other bytes"
        onnx.save(proto, model / "decoder.onnx")
        resign(model, "decoder.onnx")
        write_site(site, model, ort_web_dir=NODE_MODULES)
        third = _browse(server.url, "--profile", str(profile))
        assert third["state"] == "ready", third
        fetched = {f["file"] for f in third["files"] if f["from"] == "network"}
        assert fetched == {"decoder.onnx"}, third["files"]
    finally:
        server.close()


@heavy
@need_chromium
def test_webgpu_is_a_measured_candidate_with_wasm_parity_on_swiftshader(served):
    report = _browse(served["good"].url + "?fresh=1", "--webgpu", "--timeout", "400000", timeout=480)
    assert report["state"] == "ready" and report["logs"] == [], report
    if report["adapter"] is None:
        pytest.skip("this Chromium gives no WebGPU adapter with --enable-unsafe-webgpu (SwiftShader missing)")
    assert "webgpu" in report["runtime"] and {"fp32@webgpu", "fp32@wasm"} <= set(report["choice"]["timings"])
    webgpu = report["webgpu"]
    # every golden on both backends within the model dir's tolerances, and the two backends against each other:
    # WebGPU's shaders sum in other orders than wasm's kernels, which is what the fp32 tolerance allows for
    failed = [c for c in webgpu["checks"] if not c["passed"]]
    assert not failed and {c["backend"] for c in webgpu["checks"]} == {"wasm", "webgpu"}, webgpu
    tolerance = load(DEFAULT_MODEL_DIR).manifest.golden.tolerance
    for key, diff in webgpu["diff"].items():
        variant, graph = key.split()
        assert diff <= tolerance[variant][graph], (key, diff)
    print(f"\nwebgpu {report['adapter']}: wasm vs webgpu {webgpu['diff']}, timings {report['choice']['timings']}")


@heavy
@need_chromium
def test_page_shows_an_error_for_a_tampered_model(served):
    report = _browse(served["tampered"].url)
    assert report["state"] == "failed" and report["errorVisible"] and not report["gridVisible"], report
    assert "decoder.onnx" in report["errorText"] and "sha256" in report["errorText"] and report["tiles"] == 0


@heavy
@need_chromium
def test_page_shows_the_failing_goldens_of_a_resigned_graph(served):
    report = _browse(served["resigned"].url)
    assert report["state"] == "failed" and report["errorVisible"] and not report["gridVisible"], report
    assert "goldens do not match" in report["errorText"] and "FAIL:" in report["errorText"]
    assert "worst: decoder fp32" in report["errorText"] and report["verifiedText"].startswith("goldens FAIL")


def _python_decode(model_dir, latents: dict):
    """The Python runtime's decode of latents given as {data, dims} (a page's dump)."""
    import numpy as np

    from edgevae.runtime import VAERuntime

    z = np.asarray(latents["data"], np.float32).reshape(latents["dims"])
    return VAERuntime.load(model_dir, variant="fp32", threads=1).decode(z)


def _max_diff(images: dict, expected) -> float:
    import numpy as np

    return float(np.abs(np.asarray(images["data"], np.float32).reshape(images["dims"]) - expected).max())


@heavy
@need_chromium
def test_page_draws_an_rgb_spatial_latent_model_equal_to_python(any_vae, tmp_path):
    """The page on an RGB [-1, 1] model with a spatial, scaled and shifted latent and a Gaussian head: 64 samples drawn
    in color, the canvas equal to the decoded values, those equal to the Python runtime's decode of the page's own
    latents, and the model's goldens passing in Chromium."""
    model = any_vae / "signed" / "model"
    server = Server(write_site(tmp_path / "site", model, ort_web_dir=NODE_MODULES))
    try:
        report = _browse(server.url + "?fresh=1", "--dump")
    finally:
        server.close()
    assert report["state"] == "ready" and report["error"] is None and report["logs"] == [], report
    assert report["tiles"] == 64 and report["gridPixels"] == [3, 8, 8] and not report["noPriorVisible"]
    assert report["drawn"]["maxDiff"] <= 1 and report["drawn"]["color"], report["drawn"]
    assert report["checks"] and all(c["passed"] for c in report["checks"]), report["checks"]
    assert report["dump"]["latents"]["dims"] == [64, 4, 4, 4]
    # wasm's fp32 kernels against native onnxruntime's: the parity bound of the classic model's page
    assert _max_diff(report["dump"]["grid"], _python_decode(model, report["dump"]["latents"])) <= 1e-5


@heavy
@need_chromium
def test_page_says_a_model_without_a_prior_has_none_and_decodes_latents_from_a_file(any_vae, tmp_path):
    import numpy as np

    model = any_vae / "tiny" / "model"
    z = np.random.default_rng(1).standard_normal((5, 4, 4, 4), dtype=np.float32)
    np.save(tmp_path / "z.npy", z)
    server = Server(write_site(tmp_path / "site", model, ort_web_dir=NODE_MODULES))
    try:
        report = _browse(server.url, "--latents", str(tmp_path / "z.npy"))
    finally:
        server.close()
    assert report["state"] == "ready" and report["error"] is None and not report["errorVisible"], report
    assert report["noPriorVisible"] and report["tiles"] == 0 and report["logs"] == [], report
    assert all(c["passed"] for c in report["checks"]), report["checks"]
    decoded = report["fromFile"]
    assert decoded["status"] == "decoded 5 latent(s) from z.npy" and decoded["gridVisible"], decoded
    assert _max_diff(decoded["grid"], _python_decode(model, {"data": z.ravel().tolist(), "dims": list(z.shape)})) <= 1e-5
