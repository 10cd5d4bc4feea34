"""Hyperparameters of meg-unet, one module per concern, and the vocabulary that types them.

The defaults are the thesis's (its Table 1 and section 3.3); each value carries a comment that
cites where it comes from.  ``config.py`` chooses *what* to run (SNR, source space, sensors,
profile); these modules say *how*.  The library reads them through the frozen
:class:`meg_unet.config.Config` object, never by mutating them.

Every hyperparameter is declared once, with its type and its role::

    #: Network levels (Table 1: 5 layers).
    N_LEVELS: Model[Annotated[int, Interval(ge=1, le=8)]] = 5

The type (``int``, ``float``, ``bool``, ``str``, ``Literal[...]``, ``tuple[...]``,
``dict[...]``, ``X | None``, with an optional :class:`Interval`) is what
:func:`meg_unet.config.load_config` checks; the role (:class:`Role`) says what the value shapes,
and from it follow which settings identify a simulated split, which a trained model, and which
may change when a training is resumed.
"""

import dataclasses
import enum
from typing import Annotated, TypeVar


class Role(enum.Enum):
    """What a setting shapes; the run's hashes and its resume and reload rules follow from it."""

    #: The simulated data and the layout of the network's input and output (source space,
    #: sensors, hemisphere): a model only reads data made with the same values.
    GEOMETRY = "geometry"
    #: The simulated data only (SNR, noise, time courses): a change makes the splits stale.
    DATA = "data"
    #: What the trained network takes and gives (its channels, architecture, input scaling):
    #: fixed once a model is trained.
    MODEL = "model"
    #: How the network learns (optimizer, loss weights, batches): fixed while one training is
    #: resumed, irrelevant when a trained model is loaded.
    TRAINING = "training"
    #: How long and how fast a training runs: may change when a training is resumed.
    RESUMABLE = "resumable"
    #: Where and how fast the pipeline runs (paths, cores): never recorded, changes nothing.
    RUN = "run"


#: Roles whose settings identify a simulated split.
DATA_ROLES = (Role.GEOMETRY, Role.DATA)
#: Roles whose settings a trained model must share with the configuration that loads it.
MODEL_ROLES = (Role.GEOMETRY, Role.MODEL)


@dataclasses.dataclass(frozen=True)
class Interval:
    """Bounds of a number: ``Annotated[float, Interval(gt=0, le=1)]`` is a share in (0, 1]."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def describe(self):
        """The bounds in words, e.g. ``"> 0 and <= 1"``."""
        parts = [f"{op} {bound:g}" for op, bound in
                 ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
                 if bound is not None]
        return " and ".join(parts)

    def contains(self, value):
        """Whether ``value`` lies within the bounds."""
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))


@dataclasses.dataclass(frozen=True)
class Neutral:
    """The value of a parameter added after splits and models existed that reproduces them.

    At this value the parameter is left out of the recorded settings, so that adding it
    leaves every earlier split and model valid:
    ``ROW_ORDER: Model[Annotated[Literal[...], Neutral("source_space")]] = "source_space"``.
    """

    value: object


#: Shorthands of :class:`Interval`.
POSITIVE = Interval(gt=0)
NON_NEGATIVE = Interval(ge=0)
SHARE = Interval(gt=0, lt=1)

_T = TypeVar("_T")

#: ``Data[float]``: a float of role :attr:`Role.DATA`; likewise for the other roles.
Geometry = Annotated[_T, Role.GEOMETRY]
Data = Annotated[_T, Role.DATA]
Model = Annotated[_T, Role.MODEL]
Training = Annotated[_T, Role.TRAINING]
Resumable = Annotated[_T, Role.RESUMABLE]
Run = Annotated[_T, Role.RUN]
