"""Picture sets to scan: image folders, Fashion-MNIST, crops of the bundled photos, tensors."""

from convscope.data.any_dataset import DatasetPictures, as_picture_set
from convscope.data.crops import SampleCrops
from convscope.data.fashion_mnist import FASHION_CLASSES, FashionMNIST, fashion_mnist_root, has_fashion_mnist
from convscope.data.folder import ImageFolder
from convscope.data.idx import read_idx
from convscope.data.opening import DATA_HELP, dataset_from_spec, open_dataset
from convscope.data.pictures import FirstPictures, FittedPictures, PictureSet
from convscope.data.tensors import TensorPictures

__all__ = ["DATA_HELP", "DatasetPictures", "FASHION_CLASSES", "FashionMNIST", "FirstPictures", "FittedPictures",
           "ImageFolder", "PictureSet", "SampleCrops", "TensorPictures", "as_picture_set", "dataset_from_spec",
           "fashion_mnist_root", "has_fashion_mnist", "open_dataset", "read_idx"]
