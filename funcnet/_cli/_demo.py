"""`funcnet demo`: the main job, on the bundled digits."""

from __future__ import annotations

import time

from funcnet._cli import _common


def register(sub) -> None:
    p = sub.add_parser("demo", help="train an MLP on the bundled digits and report what funcnet can do",
                       description="Train a 64-128-10 ReLU MLP on the bundled 8x8 digits, report test accuracy, "
                                   "and write a summary JSON to the output folder.")
    _common.add_out(p, "funcnet-out/demo")
    _common.add_seed(p)
    p.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run)


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import optax

    import funcnet as fn

    t0 = time.perf_counter()
    out = _common.out_dir(args.out)
    key = jax.random.key(args.seed)
    k_split, k_init, k_fit = jax.random.split(key, 3)
    parts = fn.datasets.split(k_split, fn.datasets.digits())
    (Xtr, ytr), (Xva, yva), (Xte, yte) = jax.tree.map(jnp.asarray, parts)
    model = fn.mlp([64, 128, 10], activation="relu")
    params = model.init(k_init)

    def loss_fn(p, batch):
        x, y = batch
        return fn.losses.softmax_cross_entropy(model.apply(p, x), y)

    opt = optax.adam(3e-3)
    opt_state = opt.init(params)
    batch_size = 64
    n = Xtr.shape[0] // batch_size * batch_size

    @jax.jit
    def epoch(params, opt_state, key):
        perm = jax.random.permutation(key, Xtr.shape[0])[:n].reshape(-1, batch_size)

        def step(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(loss_fn)(p, (Xtr[idx], ytr[idx]))
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), perm)
        return params, opt_state, losses.mean()

    def accuracy(p, X, y):
        return float(jnp.mean(jnp.argmax(model.apply(p, X), -1) == y))

    for e, k in enumerate(jax.random.split(k_fit, args.epochs)):
        params, opt_state, loss = epoch(params, opt_state, k)
        if not args.quiet and (e % 10 == 9 or e == args.epochs - 1):
            print(f"epoch {e + 1:3d}/{args.epochs}  train loss {float(loss):.4f}  val acc {accuracy(params, Xva, yva):.4f}")
    test_acc = accuracy(params, Xte, yte)
    summary = {"model": repr(model), "test_accuracy": test_acc, "seconds": time.perf_counter() - t0}
    _common.write_json(out / "summary.json", summary)
    print(f"test accuracy {test_acc:.4f}; wrote {out / 'summary.json'}")
    return 0
