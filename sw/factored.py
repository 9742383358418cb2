"""A weight matrix with a pending low-rank update: continual learning without per-step matrices.

During a nudged phase the continual rules change every weight at every step, and each change is
a product of batch states: ``c (s_{l+1}' s_l'^T - s_{l+1} s_l^T)`` for C-EP (which telescopes
over the phase to ``c (s_{l+1}(t) s_l(t)^T - s_{l+1}(0) s_l(0)^T)``), ``c (s_{l+1}' - s_{l+1})
s_l^T`` for C-VF. The dynamics only ever multiply a batch of states by the weights, so
:class:`FactoredWeight` keeps ``W + lr L^T R`` with the pending update as factors ``L`` (r x out)
and ``R`` (r x in) and computes ``q (W + lr L^T R)^T = q W^T + lr (q R^T) L``: two thin products
instead of an outer product and a write of the whole matrix at every step. The update is written
into ``W`` once (:meth:`FactoredWeight.fold`), when the phase ends or as soon as the factors
would cost more than the matrix itself. The numbers are those of the literal per-step form, up
to float rounding (``tests/test_training.py`` checks this over whole epochs).

A clamped input is a second saving: ``x`` does not change during a phase, so ``x W_0^T`` is
computed once per fold instead of at every step.
"""

from __future__ import annotations

import torch


class FactoredWeight:
    """``W + lr L^T R``: a weight (updated in place by :meth:`fold`) and its pending update.

    ``clamped`` is the batch of inputs this weight sees at every step, if any (``x`` for
    ``W_0``): its product with ``W`` is computed once and then kept up to date by the folds, and
    its Gram matrix serves the pending update. The factors are kept while their rank ``r`` keeps
    ``r (in + out)`` below ``in x out``, the cost of using the matrix itself.
    """

    def __init__(self, weight: torch.Tensor, lr: float, clamped: torch.Tensor | None = None) -> None:
        self.weight, self.lr, self.clamped = weight, lr, clamped
        out_size, in_size = weight.shape
        self.max_rank = (in_size * out_size) // (in_size + out_size)
        self.left: torch.Tensor | None = None
        self.right: torch.Tensor | None = None
        #: The C-EP telescope's start: the product of states the pending update is measured from.
        self.anchor: tuple[torch.Tensor, torch.Tensor] | None = None
        #: What the folds wrote into ``weight`` since the last :meth:`end_phase`, without ``lr``.
        self.direction: torch.Tensor | None = None
        self._clamped_product = None if clamped is None else clamped @ weight.T
        # x x^T only once a pending update needs it: the free phase never does, and on an evaluation
        # chunk of thousands of samples it would cost more than the whole relaxation.
        self._clamped_gram: torch.Tensor | None = None

    def _right_product(self, q: torch.Tensor) -> torch.Tensor:
        """``q R^T``: the Gram matrix when both are the clamped input."""
        if q is self.clamped and self.right is self.clamped:
            if self._clamped_gram is None:
                self._clamped_gram = self.clamped @ self.clamped.T
            return self._clamped_gram
        return q @ self.right.T

    def times_transpose(self, q: torch.Tensor) -> torch.Tensor:
        """``q W^T`` with the pending update: the forward drive of a batch of states."""
        base = self._clamped_product if q is self.clamped else q @ self.weight.T
        if self.left is None:
            return base
        return base + self.lr * (self._right_product(q) @ self.left)

    def times(self, q: torch.Tensor) -> torch.Tensor:
        """``q W`` with the pending update: the backward drive of tied weights."""
        base = q @ self.weight
        if self.left is None:
            return base
        return base + self.lr * ((q @ self.left.T) @ self.right)

    def append(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Add ``left^T right`` to the pending update (C-VF: one rank-batch term per step; one for
        the whole phase where the presynaptic side is the clamped input)."""
        if self.left is None:
            self.left, self.right = left, right
        elif right is self.clamped and self.right is self.clamped:
            self.left = self.left + left
        else:
            self.left, self.right = torch.cat([self.left, left]), torch.cat([self.right, right])
        if self.left.shape[0] > self.max_rank:
            self.fold()

    def telescope(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Make the pending update ``left^T right - anchor``, the first call setting the anchor.

        C-EP's increments telescope, so the update since the last fold is the product of the
        current states minus that of the states at the fold: its rank stays twice the batch, or
        the batch where the presynaptic side is the clamped input (``(left - anchor)^T x``).
        """
        if self.anchor is None:
            self.anchor = (left, right)
            return
        anchor_left, anchor_right = self.anchor
        if right is anchor_right:
            self.left, self.right = left - anchor_left, right
        else:
            self.left, self.right = torch.cat([-anchor_left, left]), torch.cat([anchor_right, right])
        if self.left.shape[0] > self.max_rank:
            self.fold()
            self.anchor = (left, right)

    def fold(self) -> None:
        """Write the pending update into the weight (and into the clamped input's product)."""
        if self.left is None:
            return
        update = self.left.T @ self.right
        self.direction = update if self.direction is None else self.direction + update
        self.weight.add_(update, alpha=self.lr)
        if self.clamped is not None:
            self._clamped_product = self._clamped_product + self.lr * (self._right_product(self.clamped) @ self.left)
        self.left = self.right = None

    def end_phase(self) -> torch.Tensor:
        """Fold, forget the telescope's anchor, and return the phase's direction (zeros if none)."""
        self.fold()
        self.anchor = None
        direction, self.direction = self.direction, None
        return torch.zeros_like(self.weight) if direction is None else direction
