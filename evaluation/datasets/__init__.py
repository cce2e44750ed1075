"""Video datasets for proxy training: the built-in synthetic motion dataset and folders of real
videos, both returned as a `VideoDataset` of numpy arrays. Importing this package does not import
TensorFlow (nor OpenCV, until a video is read or written)."""

from .clips import Clips, DatasetWarning, VideoDataset, single_frame
from .config import DATASET_KINDS, SPEC_SIZED, dataset_for, load_dataset
from .folder import video_folder
from .graded import GRADED_CLASSES, LEVELS, graded
from .motion import SYNTHETIC_CLASSES, synthetic
from .video_io import VIDEO_EXTENSIONS, iter_frames, read_video, write_video

__all__ = [
    "Clips",
    "DATASET_KINDS",
    "DatasetWarning",
    "GRADED_CLASSES",
    "LEVELS",
    "SYNTHETIC_CLASSES",
    "VIDEO_EXTENSIONS",
    "SPEC_SIZED",
    "VideoDataset",
    "dataset_for",
    "graded",
    "iter_frames",
    "load_dataset",
    "read_video",
    "single_frame",
    "synthetic",
    "video_folder",
    "write_video",
]
