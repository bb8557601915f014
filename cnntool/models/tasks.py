"""The tasks a model can do, and what each promises: its input, its output, its command.

Every registry entry and checkpoint names one task; :func:`cnntool.models.loading.load` with
``task=`` is the one place a model for another task is refused. The command line says the task
with a verb (``train --task detect``); :func:`canonical_task` maps either spelling to the name.

Examples
--------
>>> canonical_task("detect"), canonical_task("Classification")
('detection', 'classification')
>>> TASK_INFO["video"].input_dims
4
"""

from __future__ import annotations

from dataclasses import dataclass

from cnntool.errors import unknown_choice


@dataclass(frozen=True)
class TaskInfo:
    """What a task's models take and give.

    Attributes
    ----------
    name : str
        The task (``classification``...), as entries and checkpoints record it.
    verb : str
        How the command line says it (``--task classify``).
    command : str
        The command that runs such a model on inputs.
    input_dims : int
        3 for images (C, H, W), 4 for clips (C, T, H, W).
    output : str
        The output contract, in words.
    background : bool
        Class 0 of the model is "background" (torchvision's detectors); the dataset's classes
        are model classes 1..K.
    """

    name: str
    verb: str
    command: str
    input_dims: int
    output: str
    background: bool = False


TASK_INFO = {
    "classification": TaskInfo("classification", "classify", "predict", 3,
                               "logits (N, K) for a batch of images (N, C, H, W)"),
    "detection": TaskInfo("detection", "detect", "detect", 3,
                          "eval: one dict per image with boxes (x1, y1, x2, y2 in input pixels), labels, "
                          "scores (and masks for instance models); train: a dict of losses", background=True),
    "segmentation": TaskInfo("segmentation", "segment", "segment", 3,
                             "logits (N, K, H, W), or a dict whose 'out' holds them (and 'aux' in training)"),
    "video": TaskInfo("video", "video", "video", 4, "logits (N, K) for a batch of clips (N, C, T, H, W)"),
    "flow": TaskInfo("flow", "flow", "video", 3, "optical flow (N, 2, H, W) between two image batches"),
}

#: Task names in a stable order.
TASKS = tuple(TASK_INFO)


def canonical_task(text: str) -> str:
    """The task a name or verb means (case-insensitive); :class:`UsageError` otherwise."""
    key = str(text).strip().lower()
    for info in TASK_INFO.values():
        if key in (info.name, info.verb):
            return info.name
    raise unknown_choice("task", text, [*TASKS, *(i.verb for i in TASK_INFO.values())])


def dense_logits(output):
    """The logits of a segmentation model's output: the tensor, or a dict's ``out``."""
    if isinstance(output, dict):
        return output["out"]
    return output
