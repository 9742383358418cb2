"""The golden model: the chip's integer arithmetic, bit for bit, vectorized with numpy.

This is the contract between Python and the hardware. The HDL computes exactly this; the
co-simulation benches and the host compare against it. Everything is ``int64`` and counts units
of ``2^-n`` of the format named. Batch size is 1 when learning (the chip changes its weights at
every nudged step); inference is vectorized over a batch as well.

Datapath, in the order the hardware does it (formats from :class:`eqprop.config.FixedConfig`):

* Weights and biases are stored with ``learn_bits`` extra fraction bits (``weight_store``,
  ``bias_store``). The multipliers see the stored weight rounded to the ``weight`` format.
* **Drive** of neuron i in layer l: ``acc = sum_j w_ij s_j`` over ``W_{l-1}`` (pre-synaptic
  ``s_{l-1}``; the input layer in the ``input`` format) and ``B_l`` (``s_{l+1}``), each product
  exact, then aligned to the accumulator's fraction bits (rounded with its mode when it has fewer),
  plus the stored bias aligned the same way. The accumulator is sized so that no drive can
  overflow it (:meth:`Arith.from_config` checks the worst case), so the sum is exact and its order
  does not matter: P lanes and an adder tree give the same integer as one lane.
* ``W_0 x`` is computed once per sample (the input drive). Without deferred input updates it is
  computed again after every update of ``W_0`` (the hardware folds it into the ``W_0`` update
  pass); with them it is tracked instead (below).
* **Activation**: the drive is rounded to the ``state`` format and clamped to [0, 1] (rho, the
  hard sigmoid). The output layer in a nudged phase adds the nudge ``beta (y - s_L)`` (beta in
  the ``factor`` format, the product rounded to ``state``) and saturates to ``state``.
* Steps are synchronous: every layer's new state is computed from the old states.
* **Continual updates** (every nudged step, from the new states ``s'`` and the old ``s``), with
  ``c_l = eta_l / (phases * beta)`` in the ``factor`` format and the phase's sign sigma:

  - tied (C-EP): row factors ``u_i = c_l s'_{l+1,i}``, ``v_i = c_l s_{l+1,i}`` (rounded to
    ``update``), ``dW_ij = sigma (u_i s'_{l,j} - v_i s_{l,j})``, ``db_i = sigma (u_i - v_i)``.
    Rounding u and v, not their difference, keeps the telescoping sum of C-EP exact.
  - untied (C-VF): ``d_i = c_l (s'_{l+1,i} - s_{l+1,i})`` and ``e_j = c_l (s'_{l,j} - s_{l,j})``
    rounded to ``update``; ``dW_ij = sigma d_i s_{l,j}``, ``dB_ji = sigma e_j s_{l+1,i}``,
    ``db_i = sigma d_i``.

  Each increment is exact, then rounded to the storage format (its rounding mode, or stochastic
  rounding with LFSR bits) and added with saturation. Updates visit ``W_l``, ``B_l``, ``b_{l+1}``
  for l = 0..L-1, each in row-major order, except a ``B_l`` with more rows than columns, which
  the chip walks column by column (:func:`eqprop.program.feedback_by_column`); LFSR draws are
  taken in that order.
* **Deferred input updates** (``hardware.defer_input_updates``, the chip's default): x is clamped,
  so every increment of ``W_0`` row i is ``sigma f_i x^T`` with the row factor difference
  ``f_i = u_i - v_i`` (tied) or ``d_i`` (untied). The chip keeps ``F_i = sum sigma f_i`` over the
  sample's nudged steps (saturating in the ``update`` format; tied, the sum telescopes to at most
  twice a factor) and, at each step, tracks
  ``W_0 x += sigma f_i ||x||^2`` (the product exact, aligned to the accumulator with its mode,
  saturating), so the dynamics see ``W_0 x`` change exactly as the literal updates would make
  it; ``W_0`` itself is written once, after the last nudged phase: ``W_0 += round(F x^T)`` (one
  rounding per weight, LFSR draws in row-major order after the sample's other draws). The other
  parameters' updates are unchanged.
* **Nudging**: one-sided (+beta), symmetric (+beta from s*, then -beta from s*: s* is kept, not
  recomputed), or random sign (one LFSR draw per sample, its bit 0 set means -beta).
* **Homeostasis** (local rule) after every ``homeostasis_period`` samples: for each reciprocal
  pair, ``gap = W_l[i,j] - B_l[j,i]`` (stored values), ``delta = lambda gap`` rounded to storage,
  ``W_l[i,j] -= delta``, ``B_l[j,i] += delta``, both saturating.

Inference is the free phase; the prediction is the first index of the largest output state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import Config, phase_count
from .errors import ConfigError
from .fixed import MAX_WIDTH, Format, bits_for, saturate, shift_round
from .program import feedback_by_column


@dataclass(frozen=True)
class Arith:
    """The integer constants of one configuration, checked so that every format holds what it must."""

    cfg: Config
    weight_store: Format
    bias_store: Format
    #: 1.0 in state units.
    one: int
    #: beta in factor units.
    beta: int
    #: ``eta_l / (phases * beta)`` in factor units, per weight layer.
    rates: tuple[int, ...]
    #: The homeostasis lambda in factor units (0 when homeostasis is off).
    lam: int

    @property
    def norm_bound(self) -> int:
        """A bound of ``||x||^2`` in units of ``2^-2n`` of the input format (every input below
        ``2^width``): the range of the chip's ``||x||^2`` register and of its multiplier operand."""
        return self.cfg.network.sizes[0] << 2 * self.cfg.fixed.input.width

    @classmethod
    def from_config(cls, cfg: Config) -> "Arith":
        """Derive the constants; raise :class:`ConfigError` naming the field that cannot work."""
        net, learn, fx = cfg.network, cfg.learning, cfg.fixed
        if learn.rule not in ("cep", "cvf"):
            raise ConfigError(f"fixed-point arithmetic runs the chip's rules, cep (tied) or cvf (untied); learning.rule is {learn.rule!r}")
        if net.activation != "hardsigmoid":
            raise ConfigError(f"fixed-point arithmetic has the hard sigmoid only; network.activation is {net.activation!r}")
        if learn.homeostasis not in ("off", "local"):
            raise ConfigError(f"the chip applies the local homeostasis rule; learning.homeostasis {learn.homeostasis!r} is float-only")
        for name in ("state", "weight", "bias", "accumulator", "update"):
            if not getattr(fx, name).signed:
                raise ConfigError(f"fixed.{name} must be signed")
        for name in ("input", "state", "weight", "update", "factor"):
            if getattr(fx, name).width > MAX_WIDTH:
                raise ConfigError(f"fixed.{name} is a multiplier operand of {getattr(fx, name).width} bits; at most {MAX_WIDTH}")
        _require(fx.input, "fixed.input", 0.0, 1.0, "inputs, which lie in [0, 1]")
        _require(fx.state, "fixed.state", -learn.beta, 1.0 + learn.beta, f"states: [0, 1] and the nudged output's one-step range [-beta, 1 + beta] with beta {learn.beta}")
        stores = {}
        for name in ("weight", "bias"):
            fmt = getattr(fx, name)
            width = fmt.width + fx.learn_bits
            if width > MAX_WIDTH:
                raise ConfigError(f"fixed.{name} {fmt} with fixed.learn_bits {fx.learn_bits} is stored in {width} bits; at most {MAX_WIDTH}")
            stores[name] = Format(True, fmt.m, fmt.n + fx.learn_bits, fmt.rounding)

        phases = phase_count(learn.nudging)
        factors = {"learning.beta": learn.beta}
        factors.update({f"learning.lr[{l}] / ({phases} beta)": lr / (phases * learn.beta) for l, lr in enumerate(learn.lr)})
        if learn.homeostasis == "local":
            factors["learning.homeostasis_coef"] = learn.homeostasis_coef
        ints = {}
        for name, value in factors.items():
            if value > fx.factor.max_value:
                raise ConfigError(f"fixed.factor {fx.factor} cannot hold {name} = {value:.6g} (max {fx.factor.max_value:.6g}): give it more integer bits")
            ints[name] = int(fx.factor.quantize(value))
            if ints[name] == 0:
                raise ConfigError(f"{name} = {value:.3g} rounds to 0 in fixed.factor {fx.factor}: give it more fraction bits")
        rates = tuple(ints[f"learning.lr[{l}] / ({phases} beta)"] for l in range(net.n_layers))

        # Row factors: c * s (tied) or c * (s' - s) (untied) must fit the update format.
        state_span = fx.state.max_value - (fx.state.min_value if not net.tied else 0.0)
        largest = max(rates) * fx.factor.resolution * max(state_span, -fx.state.min_value)
        _require(fx.update, "fixed.update", -largest, largest, "the learning factors eta/beta times a state")

        arith = cls(cfg, stores["weight"], stores["bias"], 1 << fx.state.n, ints["learning.beta"], rates, ints.get("learning.homeostasis_coef", 0))
        arith._check_accumulator()
        if fx.stochastic_rounding and max(arith.dropped_bits()) > fx.lfsr.width:
            raise ConfigError(
                f"stochastic rounding drops up to {max(arith.dropped_bits())} bits of a weight increment, "
                f"more than the {fx.lfsr.width}-bit fixed.lfsr provides"
            )
        return arith

    def pre_frac(self, l: int) -> int:
        """Fraction bits of the pre-synaptic values of ``W_l``: the input's for l = 0, else the state's."""
        fx = self.cfg.fixed
        return fx.input.n if l == 0 else fx.state.n

    def dropped_bits(self) -> list[int]:
        """Bits each kind of increment loses when rounded to storage (W_l per layer, biases, homeostasis)."""
        fx = self.cfg.fixed
        drops = [fx.update.n + self.pre_frac(l) - self.weight_store.n for l in range(self.cfg.network.n_layers)]
        drops.append(fx.update.n - self.bias_store.n)
        if self.lam:
            drops.append(fx.factor.n)
        return drops

    def _check_accumulator(self) -> None:
        """The worst-case drive of every layer must fit the accumulator (so it never overflows)."""
        acc = self.cfg.fixed.accumulator
        for l, (fan_in, worst) in enumerate(worst_drives(self.cfg), start=1):
            if worst > acc.max_value:
                raise ConfigError(
                    f"fixed.accumulator {acc} cannot hold the largest drive of layer {l} ({worst:.6g}, "
                    f"fan-in {fan_in}): it needs {bits_for(worst)} integer bits"
                )


def worst_drives(cfg: Config) -> list[tuple[int, float]]:
    """Per layer 1..L: the fan-in and the largest drive magnitude the formats allow."""
    fx, sizes = cfg.fixed, cfg.network.sizes
    largest = lambda fmt: max(-fmt.min_value, fmt.max_value)  # noqa: E731
    w, s, x, b = largest(fx.weight), largest(fx.state), largest(fx.input), largest(fx.bias)
    drives = []
    for l in range(1, len(sizes)):
        worst, fan_in = sizes[l - 1] * w * (x if l == 1 else s) + b, sizes[l - 1]
        if l < len(sizes) - 1:
            worst += sizes[l + 1] * w * s
            fan_in += sizes[l + 1]
        drives.append((fan_in, worst))
    return drives


def _require(fmt: Format, name: str, lo: float, hi: float, what: str) -> None:
    if not fmt.holds(lo, hi):
        raise ConfigError(f"{name} {fmt} (range [{fmt.min_value:.6g}, {fmt.max_value:.6g}]) cannot hold {what}")


# -- conversion ---------------------------------------------------------------------------------


def store_formats(arith: Arith) -> dict[str, Format]:
    """The storage format of every parameter array, by name."""
    from .layout import param_names

    return {name: arith.bias_store if name[0] == "b" else arith.weight_store for name in param_names(arith.cfg.network)}


def quantize_params(arith: Arith, params: dict) -> dict[str, np.ndarray]:
    """Float parameters (numpy arrays or tensors) to stored integers (rounded, saturated)."""
    formats = store_formats(arith)
    out = {}
    for name, fmt in formats.items():
        value = params[name]
        value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[name] = fmt.quantize(value)
    return out


def dequantize_params(arith: Arith, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: fmt.to_float(params[name]) for name, fmt in store_formats(arith).items()}


def quantize_inputs(arith: Arith, x) -> np.ndarray:
    return arith.cfg.fixed.input.quantize(x)


# -- the model ------------------------------------------------------------------------------------


@dataclass
class GoldenModel:
    """The chip's learning state (stored weights, sample and LFSR counters) and its arithmetic."""

    arith: Arith
    params: dict[str, np.ndarray]
    #: Training samples seen (the homeostasis period counts them).
    samples: int = 0
    #: LFSR words drawn so far.
    draws: int = 0
    _mac: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.params = {k: np.array(v, dtype=np.int64) for k, v in self.params.items()}
        self._refresh(self.params)

    @classmethod
    def from_float(cls, cfg: Config, params: dict) -> "GoldenModel":
        arith = Arith.from_config(cfg)
        return cls(arith, quantize_params(arith, params))

    # -- weights as the multipliers see them ---------------------------------------------------
    def _refresh(self, names) -> None:
        fx = self.arith.cfg.fixed
        for name in names:
            if name[0] != "b":
                self._mac[name] = saturate(shift_round(self.params[name], fx.learn_bits, fx.weight.rounding), fx.weight)
            else:
                self._mac[name] = self._align_to_acc(self.params[name], self.arith.bias_store.n)

    def _align_to_acc(self, values: np.ndarray, frac: int) -> np.ndarray:
        acc = self.arith.cfg.fixed.accumulator
        return shift_round(values, frac - acc.n, acc.rounding)

    def _dot(self, pre: np.ndarray, weights: np.ndarray, pre_frac: int) -> np.ndarray:
        """``pre @ weights.T`` with each product aligned to the accumulator: ``(batch, n_out)``."""
        fx = self.arith.cfg.fixed
        shift = fx.weight.n + pre_frac - fx.accumulator.n
        if shift <= 0:
            return (pre @ weights.T) << -shift
        products = pre[:, None, :] * weights[None, :, :]
        return shift_round(products, shift, fx.accumulator.rounding).sum(-1)

    def _backward(self, l: int) -> np.ndarray:
        """``B_l`` as multiplied (``n_l x n_{l+1}``): ``W_l^T`` when tied."""
        return self._mac[f"W{l}"].T if self.arith.cfg.network.tied else self._mac[f"B{l}"]

    def input_drive(self, x: np.ndarray) -> np.ndarray:
        """``W_0 x`` at accumulator precision, ``(batch, n_1)``."""
        return self._dot(x, self._mac["W0"], self.arith.pre_frac(0))

    # -- dynamics ------------------------------------------------------------------------------
    def step(self, s: list[np.ndarray], w0x: np.ndarray, beta: int = 0, y: np.ndarray | None = None) -> list[np.ndarray]:
        """One synchronous step from states ``s`` (``(batch, n_l)`` each); ``beta`` signed, in factor units."""
        arith, fx = self.arith, self.arith.cfg.fixed
        L = arith.cfg.network.n_layers
        new = [s[0]]
        for l in range(1, L + 1):
            acc = (w0x if l == 1 else self._dot(s[l - 1], self._mac[f"W{l - 1}"], fx.state.n)) + self._mac[f"b{l}"]
            if l < L:
                acc = acc + self._dot(s[l + 1], self._backward(l), fx.state.n)
            state = np.clip(shift_round(acc, fx.accumulator.n - fx.state.n, fx.state.rounding), 0, arith.one)
            if l == L and beta:
                nudge = shift_round(beta * (y - s[L]), fx.factor.n, fx.state.rounding)
                state = saturate(state + nudge, fx.state)
            new.append(state)
        return new

    def zero_states(self, x: np.ndarray) -> list[np.ndarray]:
        return [x] + [np.zeros((len(x), n), dtype=np.int64) for n in self.arith.cfg.network.sizes[1:]]

    def free_phase(self, x: np.ndarray, observe=None) -> list[np.ndarray]:
        """T1 steps from zero states with the input ``x`` (integers in the input format, ``(batch, n_0)``).

        ``observe(event, value)``, when given, sees ``("w0x", W_0 x)`` and ``("free", states)`` after
        every step: what :mod:`eqprop.schedule` turns into the chip's writes.
        """
        x = np.asarray(x, dtype=np.int64)
        s, w0x = self.zero_states(x), self.input_drive(x)
        if observe:
            observe("w0x", w0x)
        for _ in range(self.arith.cfg.learning.T1):
            s = self.step(s, w0x)
            if observe:
                observe("free", s)
        return s

    def predict(self, x: np.ndarray, chunk: int = 1024) -> np.ndarray:
        """Class predictions for a batch of quantized inputs (inference: the free phase)."""
        return np.concatenate([self.free_phase(x[i : i + chunk])[-1].argmax(1) for i in range(0, len(x), chunk)])

    # -- learning ------------------------------------------------------------------------------
    def phase_signs(self) -> list[int]:
        nudging = self.arith.cfg.learning.nudging
        if nudging == "one-sided":
            return [1]
        if nudging == "symmetric":
            return [1, -1]
        return [-1 if int(self._draw(1)[0]) & 1 else 1]

    def train_sample(self, x: np.ndarray, label: int, observe=None) -> None:
        """Learn one sample on chip: free phase, nudged phase(s) with continual updates, homeostasis.

        ``observe(event, value)``, when given, also sees ``("nudged", (states, W_0 x))`` after every
        nudged step (``W_0 x`` as the next step will see it), ``("update", params)`` after every
        update pass (then ``("w0x", W_0 x)`` from the new ``W_0`` without deferred input updates),
        ``("input_update", params)`` after the deferred ``W_0`` update and ``("homeostasis", params)``.
        """
        arith, fx = self.arith, self.arith.cfg.fixed
        learn, deferred = arith.cfg.learning, arith.cfg.hardware.defer_input_updates
        x = np.asarray(x, dtype=np.int64).reshape(1, -1)
        y = np.zeros((1, arith.cfg.network.sizes[-1]), dtype=np.int64)
        y[0, label] = arith.one
        s_free = self.free_phase(x, observe)
        w0x = self.input_drive(x)
        pending = np.zeros(arith.cfg.network.sizes[1], dtype=np.int64)  # F, the deferred W_0 row factors
        norm = int((x * x).sum())  # ||x||^2 in units of 2^-2n of the input format
        for sign in self.phase_signs():
            s = s_free
            if not deferred:
                w0x = self.input_drive(x)
            for _ in range(learn.T2):
                s_next = self.step(s, w0x, sign * arith.beta, y)
                self._update(s_next, s, sign)
                if deferred:
                    f = sign * self._input_factor(s_next[1][0], s[1][0])
                    pending = saturate(pending + f, fx.update)
                    exact = f.astype(object) * norm  # wider than 63 bits for wide formats
                    tracked = shift_round(exact, fx.update.n + 2 * fx.input.n - fx.accumulator.n, fx.accumulator.rounding).astype(np.int64)
                    w0x = saturate(w0x + tracked, fx.accumulator)
                else:
                    w0x = self.input_drive(x)
                if observe:
                    observe("nudged", (s_next, w0x))
                    observe("update", dict(self.params))
                    if not deferred:
                        observe("w0x", w0x)
                s = s_next
        if deferred:
            self._add("W0", np.outer(pending, x[0]), fx.update.n + fx.input.n)
            self._refresh(["W0"])
            if observe:
                observe("input_update", dict(self.params))
        self.samples += 1
        if arith.lam and self.samples % learn.homeostasis_period == 0:
            self.homeostasis()
            if observe:
                observe("homeostasis", dict(self.params))

    def _row_factor(self, c: int, values: np.ndarray) -> np.ndarray:
        fx = self.arith.cfg.fixed
        return saturate(shift_round(c * values, fx.factor.n + fx.state.n - fx.update.n, fx.update.rounding), fx.update)

    def _input_factor(self, post_new: np.ndarray, post_old: np.ndarray) -> np.ndarray:
        """The layer-1 row factor of an input-weight increment: ``u - v`` (tied) or ``d`` (untied)."""
        c = self.arith.rates[0]
        if self.arith.cfg.network.tied:
            return self._row_factor(c, post_new) - self._row_factor(c, post_old)
        return self._row_factor(c, post_new - post_old)

    def _update(self, new: list[np.ndarray], old: list[np.ndarray], sign: int) -> None:
        """The continual C-EP / C-VF update between two consecutive nudged states (batch 1);
        ``W_0`` is left to the input-layer update when it is deferred."""
        arith, fx = self.arith, self.arith.cfg.fixed
        tied, deferred = arith.cfg.network.tied, arith.cfg.hardware.defer_input_updates
        changed = []
        for l in range(arith.cfg.network.n_layers):
            c = arith.rates[l]
            post_new, post_old, pre_new, pre_old = new[l + 1][0], old[l + 1][0], new[l][0], old[l][0]
            increments = []
            weight = not (deferred and l == 0)  # a deferred W_0 is not touched here (its outer products neither)
            if tied:
                u, v = self._row_factor(c, post_new), self._row_factor(c, post_old)
                if weight:
                    increments.append((f"W{l}", np.outer(u, pre_new) - np.outer(v, pre_old), fx.update.n + arith.pre_frac(l)))
                bias = u - v
            else:
                d = self._row_factor(c, post_new - post_old)
                if weight:
                    increments.append((f"W{l}", np.outer(d, pre_old), fx.update.n + arith.pre_frac(l)))
                if l >= 1:
                    e = self._row_factor(c, pre_new - pre_old)
                    increments.append((f"B{l}", np.outer(e, post_old), fx.update.n + fx.state.n))
                bias = d
            increments.append((f"b{l + 1}", bias, fx.update.n))
            walk_b_by_column = feedback_by_column(arith.cfg.network.sizes, l)
            for name, exact, frac in increments:
                self._add(name, sign * exact, frac, by_column=name[0] == "B" and walk_b_by_column)
                changed.append(name)
        self._refresh(changed)

    def _add(self, name: str, exact: np.ndarray, frac: int, subtract: bool = False, by_column: bool = False) -> np.ndarray:
        """Round an exact increment to the parameter's storage and add (or subtract) it, saturating;
        ``by_column``: the LFSR draws go to the words column by column."""
        store = self.arith.bias_store if name[0] == "b" else self.arith.weight_store
        delta = self._round_to_store(exact, frac - store.n, store.rounding, by_column)
        self.params[name] = saturate(self.params[name] - delta if subtract else self.params[name] + delta, store)
        return delta

    def _round_to_store(self, exact: np.ndarray, shift: int, mode: str, by_column: bool = False) -> np.ndarray:
        if shift > 0 and self.arith.cfg.fixed.stochastic_rounding:
            words = self._draw(exact.size)
            noise = (words.reshape(exact.T.shape).T if by_column else words.reshape(exact.shape)) & ((1 << shift) - 1)
            return (exact + noise) >> shift
        return shift_round(exact, shift, mode)

    def _draw(self, count: int) -> np.ndarray:
        words = self.arith.cfg.fixed.lfsr.draws(self.draws, count)
        self.draws += count
        return words

    def homeostasis(self) -> None:
        """One pass of the local rule over every reciprocal pair ``W_l``, ``B_l``."""
        fx = self.arith.cfg.fixed
        names = []
        for l in range(1, self.arith.cfg.network.n_layers):
            gap = self.params[f"W{l}"] - self.params[f"B{l}"].T
            delta = self._add(f"W{l}", self.arith.lam * gap, fx.factor.n + self.arith.weight_store.n, subtract=True)
            self.params[f"B{l}"] = saturate(self.params[f"B{l}"] + delta.T, self.arith.weight_store)
            names += [f"W{l}", f"B{l}"]
        self._refresh(names)



def evaluate_fixed(model: GoldenModel, x: np.ndarray, labels: np.ndarray, chunk: int = 1024) -> dict:
    """Loss ``1/2 ||s_L - y||^2`` (in float) and accuracy of the golden model's inference on a split."""
    state = model.arith.cfg.fixed.state
    total_loss = correct = 0.0
    for i in range(0, len(x), chunk):
        out = model.free_phase(x[i : i + chunk])[-1]
        y = np.eye(out.shape[1])[labels[i : i + chunk]]
        total_loss += float((0.5 * ((state.to_float(out) - y) ** 2).sum(1)).sum())
        correct += float((out.argmax(1) == labels[i : i + chunk]).sum())
    return {"loss": total_loss / len(x), "accuracy": correct / len(x)}
