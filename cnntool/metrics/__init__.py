"""Metrics shared by training validation and ``--eval`` on the command line, one module per task:
``classification`` (confusion matrix, per-class report), ``segmentation`` (mIoU, pixel accuracy,
Dice from one confusion matrix), ``detection`` (mAP), ``flow`` (end-point error), and ``plots``.
"""
