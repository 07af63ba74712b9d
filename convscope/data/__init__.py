"""Picture sets to scan: image folders, Fashion-MNIST, crops of the bundled photos, tensors."""

from convscope.data.crops import SampleCrops
from convscope.data.fashion_mnist import FASHION_CLASSES, FashionMNIST, fashion_mnist_root, has_fashion_mnist
from convscope.data.folder import ImageFolder
from convscope.data.idx import read_idx
from convscope.data.opening import DATA_HELP, dataset_from_spec, open_dataset
from convscope.data.pictures import FirstPictures, FittedPictures, PictureSet
from convscope.data.tensors import TensorPictures

__all__ = ["DATA_HELP", "FASHION_CLASSES", "FashionMNIST", "FirstPictures", "FittedPictures", "ImageFolder",
           "PictureSet", "SampleCrops", "TensorPictures", "dataset_from_spec", "fashion_mnist_root",
           "has_fashion_mnist", "open_dataset", "read_idx"]
