"""Video datasets for proxy training: the built-in synthetic motion dataset, folders of real videos
and the split files of UCF101, HMDB51 and Kinetics, all returned as a `VideoDataset` of numpy
arrays. Importing this package does not import TensorFlow (nor OpenCV, until a video is read or
written)."""

from .clips import Clips, DatasetWarning, VideoDataset, single_frame
from .config import DATASET_KINDS, SPEC_SIZED, dataset_fields, dataset_for, load_dataset
from .folder import Decoding, video_folder
from .graded import GRADED_CLASSES, LEVELS, graded
from .lists import hmdb51, kinetics_csv, split_list
from .motion import SYNTHETIC_CLASSES, synthetic
from .video_io import VIDEO_EXTENSIONS, iter_frames, read_video, write_video

__all__ = [
    "Clips",
    "DATASET_KINDS",
    "DatasetWarning",
    "Decoding",
    "GRADED_CLASSES",
    "LEVELS",
    "SYNTHETIC_CLASSES",
    "VIDEO_EXTENSIONS",
    "SPEC_SIZED",
    "VideoDataset",
    "dataset_fields",
    "dataset_for",
    "graded",
    "hmdb51",
    "iter_frames",
    "kinetics_csv",
    "load_dataset",
    "read_video",
    "single_frame",
    "split_list",
    "synthetic",
    "video_folder",
    "write_video",
]
