"""fn.check: numerical_grad against closed forms, compare_grads across methods, and bad input."""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcnet as fn
from funcnet import tracer
from funcnet._boundary import array_namespace

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "softmax", "log_softmax")
LOSSES = ("mse", "half_mse", "softmax_cross_entropy", "binary_cross_entropy")


# ----------------------------------------------------------------------------- numerical_grad
def test_numerical_grad_of_a_pytree_matches_closed_form():
    # f(p) = Σ sin(w)·b² + exp(c): ∂/∂w = cos(w)·Σb², ∂/∂b = 2b·Σ sin(w), ∂/∂c = exp(c)
    p = {"w": np.array([[0.3, -1.2], [2.0, 0.1]]), "b": [np.array([0.5, -2.0, 1.5])], "c": 0.7}

    def f(p):
        xp = array_namespace(p)
        return xp.sum(xp.sin(p["w"])) * xp.sum(p["b"][0] ** 2) + xp.exp(p["c"])

    g = fn.check.numerical_grad(f, p)
    want = {"w": np.cos(p["w"]) * np.sum(p["b"][0] ** 2), "b": [2 * p["b"][0] * np.sin(p["w"]).sum()],
            "c": np.exp(0.7)}
    assert jax.tree.structure(g) == jax.tree.structure(want)
    for got, ref in zip(jax.tree.leaves(g), jax.tree.leaves(want)):
        assert got.dtype == np.float64
        # central differences in float64: error ≈ h²|f'''|/6 + ε|f|/h with h ≈ 6e-6·max(1,|x|)
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-8)


def test_numerical_grad_argnums_tuple_and_forward_method():
    f = lambda x, y, k: jnp.sum(x * y ** 2) * k  # noqa: E731  (k: an untouched int argument)
    x, y = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    gx, gy = fn.check.numerical_grad(f, x, y, 2, argnums=(0, 1))
    np.testing.assert_allclose(gx, 2 * y ** 2, rtol=1e-9)
    np.testing.assert_allclose(gy, 2 * 2 * x * y, rtol=1e-9)
    # forward differences are O(h) with h ≈ 1.5e-8·max(1,|x|): about 1e-7 relative here
    gyf = fn.check.numerical_grad(f, x, y, 2, argnums=1, method="forward")
    np.testing.assert_allclose(gyf, 2 * 2 * x * y, rtol=1e-6)


def test_numerical_grad_runs_float32_inputs_in_float64():
    x32 = np.array([0.1, 0.2, 0.3], np.float32)
    g = fn.check.numerical_grad(lambda x: jnp.sum(jnp.exp(x)), x32)
    # float64 accuracy (not float32's ~1e-3) proves the computation was promoted
    np.testing.assert_allclose(g, np.exp(x32.astype(np.float64)), rtol=1e-9)


def test_step_follows_the_dtype_f_computes_in():
    assert fn.check.default_step(np.float64) == pytest.approx(np.finfo(np.float64).eps ** (1 / 3), rel=1e-12)
    assert fn.check.default_step(np.float32, "forward") == pytest.approx(np.finfo(np.float32).eps ** 0.5, rel=1e-6)
    # f that casts down to float32: float64 steps would give garbage; the float32 step gives ~1e-3
    f = lambda x: jnp.sum(jnp.asarray(x, jnp.float32) ** 2)  # noqa: E731
    g = fn.check.numerical_grad(f, np.array([1.0, 3.0]))
    np.testing.assert_allclose(g, [2.0, 6.0], rtol=5e-3)


# ----------------------------------------------------------------------------- bad input
def test_integer_argument_is_refused_clearly():
    with pytest.raises(TypeError, match=r"only defined for float arguments.*int64.*astype\(float\)"):
        fn.check.numerical_grad(lambda x: x.sum(), np.array([1, 2]))
    with pytest.raises(TypeError, match=r"leaf \[1\]\['n'\] has dtype int"):
        fn.check.compare_grads(lambda p: p[0].sum(), [np.ones(2), {"n": np.arange(3)}], methods=("jax", "numerical"))


def test_non_finite_point_and_non_finite_value_are_refused():
    with pytest.raises(ValueError, match=r"not finite: leaf \['w'\] holds 1 non-finite.*index \(1,\): nan"):
        fn.check.numerical_grad(lambda p: p["w"].sum(), {"w": np.array([1.0, np.nan])})
    with pytest.raises(ValueError, match=r"f is not finite at the point \(f = inf\)"):
        fn.check.compare_grads(lambda x: jnp.sum(1.0 / x), np.array([0.0, 1.0]), methods=("jax", "numerical"))
    with pytest.raises(ValueError, match="one step .* away from the point"):
        fn.check.numerical_grad(lambda x: jnp.sum(jnp.log(x)), np.array([1e-9]), eps=1e-3)


def test_too_small_eps_warns_with_the_step_used():
    f = lambda x: jnp.sum(x ** 2)  # noqa: E731
    with pytest.warns(fn.check.GradCheckWarning, match=r"eps=1e-12 is too small for float64 central.*default step is 6.06e-06"):
        g = fn.check.numerical_grad(f, np.array([1.0]), eps=1e-12)
    assert abs(g[0] - 2.0) < 1e-2  # rounding error ε|f|/eps ≈ 2e-4: still roughly right
    with pytest.warns(fn.check.GradCheckWarning, match=r"x \+ eps == x.*used the default step"):
        g = fn.check.numerical_grad(f, np.array([1e6]), eps=1e-12)
    np.testing.assert_allclose(g, [2e6], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn.check.numerical_grad(f, np.array([1.0]), eps=1e-6)  # a sensible step: silent


def test_other_bad_calls():
    with pytest.raises(TypeError, match=r"must return a scalar .* got shape \(2,\)"):
        fn.check.numerical_grad(lambda x: x * 2, np.ones(2))
    with pytest.raises(ValueError, match="'central' or 'forward'"):
        fn.check.numerical_grad(lambda x: x.sum(), np.ones(2), method="backward")
    with pytest.raises(ValueError, match="positive finite step"):
        fn.check.numerical_grad(lambda x: x.sum(), np.ones(2), eps=0.0)
    with pytest.raises(ValueError, match="distinct names from"):
        fn.check.compare_grads(lambda x: x.sum(), np.ones(2), methods=("jax", "autograd"))
    with pytest.raises(ValueError, match="fn.manual.mlp_loss"):
        fn.check.compare_grads(lambda x: x.sum(), np.ones(2), methods=("jax", "manual"))
    with pytest.raises(ValueError, match="argnums=3"):
        fn.check.numerical_grad(lambda x: x.sum(), np.ones(2), argnums=3)


# ----------------------------------------------------------------------------- compare_grads
def _mlp_loss(act, loss, out_act=None, seed=0):
    model = fn.mlp([3, 4, 3], activation=act, output_activation=out_act)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, 3))
    y = rng.integers(0, 3, size=5) if loss == "softmax_cross_entropy" else rng.uniform(size=(5, 3))
    return fn.manual.mlp_loss(model, x, y, loss), model.init(jax.random.key(seed))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_compare_grads_on_mlp_losses_reports_ok(act, loss):
    f, params = _mlp_loss(act, loss)
    report = fn.check.compare_grads(f, params)
    assert report.methods == ("jax", "tracer", "numerical", "manual")
    report.assert_ok()
    # 4 leaves x 6 pairs; the exact methods agree far below their tolerance
    assert len(report.rows) == 24
    exact = [r for r in report.rows if "numerical" not in r.methods]
    assert max(r.max_rel_error for r in exact) < 1e-10
    # and the gradient is the one jax.grad gives (independent reference, in float64)
    with jax.enable_x64(True):
        ref = jax.grad(f)(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params))
    for got, want in zip(jax.tree.leaves(report.grads["tracer"]), jax.tree.leaves(ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)


def test_report_table_and_json():
    f, params = _mlp_loss("tanh", "half_mse")
    report = fn.check.compare_grads(f, params, methods=("jax", "numerical", "manual"))
    text = str(report)
    assert "[0]['w']  (3, 4)  jax vs numerical" in text
    assert "tolerances exact rtol=1e-08 atol=1e-10, numerical rtol=1e-05 atol=1e-06" in text
    assert text.splitlines()[-1].startswith("OK: max abs error")
    assert report.max_abs_error == max(r.max_abs_error for r in report.rows)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["ok"] is True and len(d["rows"]) == 4 * 3


def _wrong_cube():
    """x ↦ Σx³ whose tracer rule is wrong (2x² instead of 3x²), and whose JAX path is right."""
    cube = tracer.primitive(lambda x: x ** 3, "cube")
    tracer.defvjp(cube, lambda g, ans, x: g * 2 * x ** 2)

    def f(x):
        xp = array_namespace(x)
        y = cube(x) if isinstance(x, tracer.Box) else x ** 3
        return xp.sum(xp.tanh(y))
    return f


def test_a_wrong_derivative_rule_is_caught():
    f = _wrong_cube()
    x = np.array([0.5, -0.7, 0.9])
    report = fn.check.compare_grads(f, x)
    assert not report.ok
    bad = {r.methods for r in report.rows if not r.ok}
    assert bad == {("jax", "tracer"), ("tracer", "numerical")}
    # the tracer's answer is 2/3 of the truth: relative error 1/3 (reference: the derivative by hand)
    want = 3 * x ** 2 * (1 - np.tanh(x ** 3) ** 2)
    np.testing.assert_allclose(report.grads["tracer"], want * 2 / 3, rtol=1e-12)
    np.testing.assert_allclose(report.grads["jax"], want, rtol=1e-12)
    jt = next(r for r in report.rows if r.methods == ("jax", "tracer"))
    assert jt.max_rel_error == pytest.approx(1 / 3, rel=1e-9)
    assert "MISMATCH" in str(report)
    assert not bool(report)  # `assert compare_grads(...)` must fail here
    with pytest.raises(AssertionError, match="gradients disagree"):
        report.assert_ok()


def test_a_method_that_cannot_run_is_reported_not_a_mismatch():
    f = lambda x: jnp.sum(jnp.sin(x))  # noqa: E731  (jnp only: the tracer cannot run it)
    report = fn.check.compare_grads(f, np.array([0.1, 0.2]))
    # jax and finite differences agree, so the report is ok; the tracer is named with the reason
    assert report.ok and report.ran == ("jax", "numerical") and set(report.cannot_run) == {"tracer"}
    assert not report.failures
    text = str(report)
    assert "tracer: cannot run (TypeError:" in text and "MISMATCH" not in text
    assert text.splitlines()[-1].endswith("; 2 of 3 methods ran") and text.splitlines()[-1].startswith("OK: ")
    # independent reference: d/dx Σ sin x = cos x
    np.testing.assert_allclose(report.grads["numerical"], np.cos([0.1, 0.2]), rtol=1e-9)
    np.testing.assert_allclose(report.grads["jax"], np.cos([0.1, 0.2]), rtol=1e-12)
    assert report.to_dict()["cannot_run"]["tracer"].startswith("TypeError:")


def test_one_method_that_ran_is_not_a_pass():
    f = lambda x: jnp.sum(jnp.sin(x))  # noqa: E731
    report = fn.check.compare_grads(f, np.array([0.1, 0.2]), methods=("jax", "tracer"))
    assert not report.ok and not bool(report) and report.rows == []
    assert "nothing was compared" in str(report) and str(report).splitlines()[-1].startswith("FAILED: ")
    assert str(report).splitlines()[-1].endswith("1 of 2 methods ran")


def test_fd_is_an_alias_of_numerical():
    report = fn.check.compare_grads(lambda x: (x ** 2).sum(), np.array([1.5, -2.0]), methods=("tracer", "fd"))
    assert report.methods == ("tracer", "numerical") and report.ok
    np.testing.assert_allclose(report.grads["tracer"], [3.0, -4.0], rtol=1e-12)


def test_has_aux_differentiates_the_value_only():
    f = lambda x: ((x ** 3).sum(), {"note": x * 2})  # noqa: E731
    x = np.array([0.5, -1.0])
    report = fn.check.compare_grads(f, x, has_aux=True)
    assert report.ok and report.ran == ("jax", "tracer", "numerical")
    np.testing.assert_allclose(report.grads["tracer"], 3 * x ** 2, rtol=1e-12)   # closed form 3x²
    np.testing.assert_allclose(fn.check.numerical_grad(f, x, has_aux=True), 3 * x ** 2, rtol=1e-8)


def test_report_html_is_a_table_and_text_stays_text():
    f = _wrong_cube()
    report = fn.check.compare_grads(f, np.array([0.5, -0.7]))
    page = report._repr_html_()
    assert page.count("<tr>") == 1 + len(report.rows) and "<th>max abs err</th>" in page
    assert "<b>MISMATCH</b>" in page and "first differing leaf: x (jax vs tracer" in page
    assert "<" not in str(report) and "first differing leaf: x (jax vs tracer" in str(report)


def test_tolerances_can_be_overridden():
    f, params = _mlp_loss("sigmoid", "mse")
    strict = fn.check.compare_grads(f, params, methods=("jax", "numerical"), numerical_rtol=0.0, numerical_atol=1e-16)
    assert not strict.ok  # finite differences are never exact to 1e-16
    assert strict.tolerances["numerical"] == (0.0, 1e-16)


def test_first_differing_node_names_the_wrong_rule():
    f = _wrong_cube()
    report = fn.check.compare_grads(f, np.array([0.5, -0.7, 0.9]), methods=("jax", "tracer"))
    # graph: x -> v1 = cube(x) -> v2 = tanh(v1) -> out = sum(v2); only dout/dx is wrong
    assert report.first_bad_node.startswith("x = input, shape (3,)")
    assert report.first_bad_node.endswith("consumer(s): v1 = cube(x)")
    assert "first differing node: x = input" in str(report)


def test_first_differing_node_deep_in_a_graph():
    sq = tracer.primitive(lambda x: x * x, "square")
    tracer.defvjp(sq, lambda g, ans, x: g * x)  # wrong: should be 2x

    def f(w, x):
        xp = array_namespace(w, x)
        h = xp.tanh(x @ w)
        s = sq(h) if isinstance(h, tracer.Box) else h * h
        return xp.mean(xp.exp(-s))

    w = np.array([[0.3, -0.5], [0.8, 0.1]])
    x = np.array([[1.0, 2.0], [-0.5, 0.3], [0.2, 0.2]])
    report = fn.check.compare_grads(f, w, x, methods=("jax", "tracer"))
    assert not report.ok
    # h = tanh(x @ w) is the node whose gradient the wrong square rule produced
    assert report.first_bad_node.startswith("v2 = tanh(v1), shape (3, 2)"), report.first_bad_node
    assert "consumer(s): v3 = square(v2)" in report.first_bad_node


def test_diagnosis_blames_jax_when_the_tracer_is_right():
    @jax.custom_vjp
    def bad_tanh(x):
        return jnp.tanh(x)

    bad_tanh.defvjp(lambda x: (jnp.tanh(x), x), lambda x, g: (g * 0.5,))

    def f(x):
        xp = array_namespace(x)
        return xp.sum(xp.tanh(x) if isinstance(x, tracer.Box) else bad_tanh(x))

    report = fn.check.compare_grads(f, np.array([0.2, -0.4]), methods=("jax", "tracer", "numerical"))
    assert {r.methods for r in report.rows if not r.ok} == {("jax", "tracer"), ("jax", "numerical")}
    assert report.first_bad_node.startswith("every node of the traced graph agrees")
