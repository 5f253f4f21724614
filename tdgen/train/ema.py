"""An exponential moving average of the trained parameters (the exported model uses its values)."""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator, Mapping

import torch

from ..errors import UsageError

__all__ = ["EMA"]


class EMA:
    """Exponential moving average of named parameters, kept in float32.

    ``decay`` warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so short runs
    are not dominated by the initial weights.
    """

    def __init__(self, named_params: Iterable[tuple[str, torch.nn.Parameter]], decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] = {n: p.detach().float().clone() for n, p in named_params}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, named_params: Iterable[tuple[str, torch.nn.Parameter]]) -> None:
        """Move every average towards the parameter's current value."""
        d = self.current_decay()
        for n, p in named_params:
            s = self.shadow[n]
            s.mul_(d).add_(p.detach().to(s.dtype), alpha=1.0 - d)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averages by parameter name (what a checkpoint stores)."""
        return {n: t.contiguous() for n, t in self.shadow.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], updates: int) -> None:
        """Restore the averages and the update count of a checkpoint (extra names are ignored)."""
        missing = set(self.shadow) - set(state)
        if missing:
            raise UsageError(f"checkpoint EMA lacks {len(missing)} trained parameters (e.g. {sorted(missing)[0]}); "
                             "was it made with another --stage?")
        for n in self.shadow:
            self.shadow[n] = state[n].to(self.shadow[n].device, torch.float32).clone()
        self.updates = int(updates)

    @contextlib.contextmanager
    def applied_to(self, model: torch.nn.Module) -> Iterator[torch.nn.Module]:
        """Temporarily copy the EMA values into ``model``'s parameters (restored afterwards)."""
        params = dict(model.named_parameters())
        saved = {n: params[n].detach().clone() for n in self.shadow}
        try:
            with torch.no_grad():
                for n, s in self.shadow.items():
                    params[n].copy_(s.to(params[n].device, params[n].dtype))
            yield model
        finally:
            with torch.no_grad():
                for n, t in saved.items():
                    params[n].copy_(t)
