"""torchvision's detectors, segmenters, video classifiers and optical-flow models as registry entries.

Names are torchvision's builders' (``fasterrcnn_mobilenet_v3_large_320_fpn``); ``NAME:COCO_V1``
(or ``:DEFAULT``) loads the published weights and their category names from torch's cache.
Every builder gets ``weights_backbone=None`` from :meth:`ModelEntry.build`, so building one
"without weights" never downloads an ImageNet backbone. ``reference_params`` are torchvision's
published ``num_params``, plus, for detectors whose pretrained backbone has frozen batch-norm
statistics, those layers' affine parameters (trainable when built without weights); the preprocessing is the weights' own evaluation transform (detectors
resize and normalise inside the model; segmenters take the shorter side to 520; video models
resize, centre-crop and normalise clips with the Kinetics statistics). ``head`` and
``extra_heads`` are the layers a new set of classes replaces. Importing this module imports no
torch.
"""

from __future__ import annotations

from cnntool.data.preprocessing import Preprocessing
from cnntool.models.registry import IMAGENET_MEAN, IMAGENET_STD, ModelEntry, register

COCO_CLASSES = 91          # torchvision's COCO category ids 0..90, 0 = background
VOC_CLASSES = 21           # background + the 20 Pascal VOC classes
KINETICS_CLASSES = 400
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def _detector(name: str, *, family: str, head: str, size: int, params: int, description: str,
              extra_heads: tuple[str, ...] = ()) -> None:
    register(ModelEntry(
        name=name, task="detection", builder=f"torchvision.models.detection:{name}", family=family,
        preprocessing=Preprocessing((3, size, size), IMAGENET_MEAN, IMAGENET_STD, resize_mode="none",
                                    normalize_in_model=True),
        num_classes=COCO_CLASSES, reference_params=params, head=head, extra_heads=extra_heads,
        weights=("COCO_V1",), default_weights="COCO_V1", torchvision_name=name, description=description,
    ))


_detector("fasterrcnn_resnet50_fpn", family="fasterrcnn", head="roi_heads.box_predictor", size=800,
          params=41_808_406, description="Faster R-CNN (2015), ResNet-50 FPN: region proposals, then per-box heads")
_detector("fasterrcnn_resnet50_fpn_v2", family="fasterrcnn", head="roi_heads.box_predictor", size=800,
          params=43_712_278, description="Faster R-CNN v2 (2021 recipe), ResNet-50 FPN")
_detector("fasterrcnn_mobilenet_v3_large_fpn", family="fasterrcnn", head="roi_heads.box_predictor", size=800,
          params=19_410_754, description="Faster R-CNN with a MobileNet-V3 Large FPN backbone")
_detector("fasterrcnn_mobilenet_v3_large_320_fpn", family="fasterrcnn", head="roi_heads.box_predictor", size=320,
          params=19_410_754, description="Faster R-CNN, MobileNet-V3 Large FPN at 320 px: fast on a CPU")
_detector("retinanet_resnet50_fpn", family="retinanet", head="head.classification_head", size=800,
          params=34_068_119, description="RetinaNet (2017): one-stage, focal loss, ResNet-50 FPN")
_detector("retinanet_resnet50_fpn_v2", family="retinanet", head="head.classification_head", size=800,
          params=38_198_935, description="RetinaNet v2, ResNet-50 FPN")
_detector("fcos_resnet50_fpn", family="fcos", head="head.classification_head", size=800, params=32_322_720,
          description="FCOS (2019): anchor-free one-stage detector, ResNet-50 FPN")
_detector("ssd300_vgg16", family="ssd", head="head.classification_head", size=300, params=35_641_826,
          description="SSD300 (2016): one-stage multi-scale detector on VGG-16")
_detector("ssdlite320_mobilenet_v3_large", family="ssdlite", head="head.classification_head", size=320,
          params=3_440_060, description="SSDlite 320 on MobileNet-V3 Large: small and fast")
_detector("maskrcnn_resnet50_fpn", family="maskrcnn", head="roi_heads.box_predictor", size=800, params=44_454_513,
          extra_heads=("roi_heads.mask_predictor",),
          description="Mask R-CNN (2017): Faster R-CNN plus a mask per box (instance segmentation)")
_detector("maskrcnn_resnet50_fpn_v2", family="maskrcnn", head="roi_heads.box_predictor", size=800,
          params=46_359_409, extra_heads=("roi_heads.mask_predictor",),
          description="Mask R-CNN v2 (2021 recipe): instance segmentation")


def _segmenter(name: str, *, family: str, params: int, description: str, head: str = "classifier.4",
               extra_heads: tuple[str, ...] = ("aux_classifier.4",), aux: bool = True) -> None:
    register(ModelEntry(
        name=name, task="segmentation", builder=f"torchvision.models.segmentation:{name}", family=family,
        preprocessing=Preprocessing((3, 520, 520), IMAGENET_MEAN, IMAGENET_STD, resize_mode="shorter",
                                    resize_size=520),
        num_classes=VOC_CLASSES, reference_params=params, head=head, extra_heads=extra_heads,
        weights=("COCO_WITH_VOC_LABELS_V1",), default_weights="COCO_WITH_VOC_LABELS_V1", torchvision_name=name,
        description=description, builder_kwargs={"aux_loss": True} if aux else {},
    ))


_segmenter("fcn_resnet50", family="fcn", params=35_322_218,
           description="FCN (2015): fully convolutional, dense layers as convolutions, ResNet-50")
_segmenter("fcn_resnet101", family="fcn", params=54_314_346, description="FCN, ResNet-101 backbone")
_segmenter("deeplabv3_resnet50", family="deeplabv3", params=42_004_074,
           description="DeepLabV3 (2017): atrous spatial pyramid pooling, ResNet-50")
_segmenter("deeplabv3_resnet101", family="deeplabv3", params=60_996_202, description="DeepLabV3, ResNet-101")
_segmenter("deeplabv3_mobilenet_v3_large", family="deeplabv3", params=11_029_328,
           description="DeepLabV3 on MobileNet-V3 Large")
_segmenter("lraspp_mobilenet_v3_large", family="lraspp", params=3_221_538, head="classifier.low_classifier",
           extra_heads=("classifier.high_classifier",), aux=False,
           description="LR-ASPP (2019) on MobileNet-V3 Large: light semantic segmentation")


def _video(name: str, *, params: int, crop: int, resize, frames: int, head: str, cam_layer: str | None,
           first_conv: str | None, description: str, mean=KINETICS_MEAN, std=KINETICS_STD,
           min_frames: int | None = None, exact_frames: int | None = None) -> None:
    register(ModelEntry(
        name=name, task="video", builder=f"torchvision.models.video:{name}", family=name.split("_")[0],
        preprocessing=Preprocessing((3, frames, crop, crop), mean, std, resize_mode="crop", resize_size=resize),
        num_classes=KINETICS_CLASSES, reference_params=params, head=head, cam_layer=cam_layer, first_conv=first_conv,
        weights=("KINETICS400_V1",), default_weights="KINETICS400_V1", torchvision_name=name,
        description=description, min_frames=min_frames, exact_frames=exact_frames,
    ))


_video("r3d_18", params=33_371_472, crop=112, resize=(128, 171), frames=16, head="fc", cam_layer="layer4",
       first_conv="stem.0", description="ResNet3D-18 (2017): 3D convolutions over 16-frame clips")
_video("mc3_18", params=11_695_440, crop=112, resize=(128, 171), frames=16, head="fc", cam_layer="layer4",
       first_conv="stem.0", description="MC3-18: mixed convolutions, 3D early and 2D late")
_video("r2plus1d_18", params=31_505_325, crop=112, resize=(128, 171), frames=16, head="fc", cam_layer="layer4",
       first_conv="stem.0", description="R(2+1)D-18: 3D convolutions factored into spatial and temporal")
_video("s3d", params=8_320_048, crop=224, resize=(256, 256), frames=16, head="classifier.1", cam_layer=None,
       first_conv=None, min_frames=14, description="S3D (2018): separable 3D inception; at least 14 frames")
_video("mvit_v1_b", params=36_610_672, crop=224, resize=256, frames=16, head="head.1", cam_layer=None,
       first_conv=None, mean=(0.45,) * 3, std=(0.225,) * 3, exact_frames=16,
       description="MViT v1 base (2021): multiscale vision transformer; exactly 16 frames")
_video("mvit_v2_s", params=34_537_744, crop=224, resize=256, frames=16, head="head.1", cam_layer=None,
       first_conv=None, mean=(0.45,) * 3, std=(0.225,) * 3, exact_frames=16,
       description="MViT v2 small (2022); exactly 16 frames")
_video("swin3d_t", params=28_158_070, crop=224, resize=256, frames=32, head="head", cam_layer=None,
       first_conv=None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
       description="Video Swin Transformer tiny (2022): shifted-window attention over 32-frame clips")


def _flow(name: str, *, params: int, weights: tuple[str, ...], default: str, description: str) -> None:
    register(ModelEntry(
        name=name, task="flow", builder=f"torchvision.models.optical_flow:{name}", family="raft",
        preprocessing=Preprocessing((3, 368, 496), (0.5,) * 3, (0.5,) * 3, resize_mode="none"),
        num_classes=2, reference_params=params, weights=weights, default_weights=default,
        torchvision_name=name, description=description,
    ))


_flow("raft_small", params=990_162, weights=("C_T_V1", "C_T_V2"), default="C_T_V2",
      description="RAFT small (2020): recurrent all-pairs optical flow")
_flow("raft_large", params=5_257_536,
      weights=("C_T_V1", "C_T_V2", "C_T_SKHT_V1", "C_T_SKHT_V2", "C_T_SKHT_K_V1", "C_T_SKHT_K_V2"),
      default="C_T_SKHT_V2", description="RAFT large (2020): recurrent all-pairs optical flow")
