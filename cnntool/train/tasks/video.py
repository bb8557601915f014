"""The video plug-in of the trainer: clips from class folders of videos, cross-entropy, accuracy.

Data: ``root/<class>/*.mp4`` (any format :mod:`cnntool.data.video` reads), or ``train/``,
``val/`` (and ``test/``) folders of them; without ``val/`` a seeded, stratified
``--val-split``. :func:`cnntool.data.clips.load_clip_data` builds the datasets: a model sees T
frames ``frame_stride`` apart (both from its :class:`~cnntool.data.preprocessing.Preprocessing`,
which every checkpoint records, so ``cnntool video`` later cuts the same clips); each training
video gives one clip per epoch from a random start (temporal jitter), augmented as a whole (one
draw of :class:`~cnntool.data.transforms.TrainTransform` for all its frames, so the motion stays
intact); validation takes the centred clip. Small datasets stay decoded in memory. Under DDP
each process decodes only its own shard of the videos.

A model that takes optical flow (``--arch two_stream --arch-arg motion=flow``) has the flow method
in its preprocessing (:meth:`~cnntool.models.registry.ModelEntry.clip_preprocessing`, DIS by
default): the datasets append the flow from each frame to the next as two channels, each
checkpoint records the method, and ``cnntool video`` appends the same flow to every window.

A step, the evaluator, the best checkpoint (validation accuracy, ties to the lower loss), the
figures and the summary are classification's (:class:`~cnntool.train.tasks.classify.ClassifyTask`):
a clip model's output is class scores, like an image classifier's. Mixup mixes whole clips;
cutmix (a box cut from 2-D images) does not apply to clips and is refused.

The recipe (:attr:`VideoTask.recipe`) trains the default ``c3d_small`` from scratch on a CPU in
about a minute on moving-square clips (150 per class): AdamW at 3e-3, weight decay 1e-4, batches
of 16, 8 epochs, the runner's cosine schedule with a one-epoch warmup.
"""

from __future__ import annotations

from cnntool.errors import UsageError
from cnntool.train.tasks import TaskData
from cnntool.train.tasks.classify import ClassifyTask


class VideoTask(ClassifyTask):
    """Video (clip) classification (see the module docstring)."""

    name = "video"
    unit = "videos"  # what the run's counts are of (one clip drawn from each per epoch)
    default_arch = "c3d_small"
    recipe: dict = {"optimizer": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "epochs": 8, "batch_size": 16}
    ignores = ("cutmix", "dice_weight")

    def load_data(self, cfg, preprocessing, dist) -> TaskData:
        from cnntool.data.clips import load_clip_data

        if not preprocessing.frames:
            raise UsageError(f"the model's input {list(preprocessing.input_size)} is an image, not a clip",
                             hint="pick a video model (`cnntool models list --task video`)")
        cache = {"on": True, "off": False}.get(cfg.cache, cfg.cache)
        data = load_clip_data(cfg.data, preprocessing=preprocessing, frame_stride=preprocessing.frame_stride,
                              augment=cfg.resolved_aug(self.recipe) if cfg.augment else None,
                              val_split=cfg.val_split, seed=cfg.seed, cache=cache, verify=cfg.verify, rank=dist.rank, world_size=dist.world_size)
        clips = f"clips of {preprocessing.frames} frames every {preprocessing.frame_stride}"
        if preprocessing.flow:
            clips += f", with {preprocessing.flow} optical flow"
        return TaskData(classes=data.classes, model_classes=list(data.classes), train=data.train, val=data.val,
                        test=data.test, sizes=data.sizes, skipped=data.skipped, split=data.split,
                        cached=data.train.cached and data.val.cached,
                        describe=f"{len(data.classes)} classes, {data.split}, {clips}")
