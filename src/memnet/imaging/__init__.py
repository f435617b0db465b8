"""MATLAB-compatible pixel math: pure functions on numpy arrays, float64 unless stated."""

from memnet.imaging.color import rgb2gray, rgb2ycbcr, ycbcr2rgb
from memnet.imaging.jpeg import jpeg_decode, jpeg_encode, jpeg_roundtrip
from memnet.imaging.noise import add_gaussian_noise, noise_generator
from memnet.imaging.resize import imresize, modcrop

__all__ = [
    "add_gaussian_noise",
    "imresize",
    "jpeg_decode",
    "jpeg_encode",
    "jpeg_roundtrip",
    "modcrop",
    "noise_generator",
    "rgb2gray",
    "rgb2ycbcr",
    "ycbcr2rgb",
]
