"""Import of the authors' trained Caffe MemNet models (no Caffe needed).

`convert_caffemodel` reads a `.caffemodel` (protobuf wire format, `memnet.interop.caffe.wire`) and,
optionally, its deploy `.prototxt` (`memnet.interop.caffe.text_format`), checks that the network is a
MemNet in the authors' layer layout (`memnet.interop.caffe.authors_layout`) and writes a memnet
`.safetensors` weights file with the source file and its SHA-256 in the metadata.
"""

from memnet.interop.caffe.convert import (
    AUTHORS_LEVELS,
    Conversion,
    check_conversion_paths,
    convert_caffemodel,
    convert_net,
)

__all__ = [
    "AUTHORS_LEVELS",
    "Conversion",
    "check_conversion_paths",
    "convert_caffemodel",
    "convert_net",
]
