"""Training: the recipe (:mod:`~cnntool.train.config`), the epoch loop (:mod:`~cnntool.train.loop`),
classification end to end (:mod:`~cnntool.train.classify`), fine-tuning
(:mod:`~cnntool.train.finetune`), mixup/cutmix (:mod:`~cnntool.train.augment`), distributed
training (:mod:`~cnntool.train.distributed`), metrics and
plots. Nothing here prints.
"""
