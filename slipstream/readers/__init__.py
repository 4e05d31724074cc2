"""Readers: field metadata and sample bytes of a data source, ready for the slip cache.

A reader has ``field_types`` (name -> ``"ImageBytes"`` | ``"bytes"`` | ``"str"`` |
``"int"`` | ``"float"``), ``__len__``, ``read_sample(i) -> dict``, ``describe(i) -> str``
(a human name for error messages) and ``fingerprint() -> str`` (source identity).
"""

from slipstream.readers.ffcv_file import FfcvFile
from slipstream.readers.ffcv_format import FfcvFormatError
from slipstream.readers.file_list import FILE_LIST_SUFFIXES, FileListError, FileListReader
from slipstream.readers.huggingface import HuggingFaceError, HuggingFaceReader, load_hf_dataset
from slipstream.readers.image_folder import IMG_EXTENSIONS, ImageFolderReader
from slipstream.readers.litdata_dataset import LitDataFormatError, LitDataReader

# Hugging Face support (slipstream.readers.huggingface) imports datasets only when used.
# s3:// support (slipstream.readers.s3_download, slipstream.readers.litdata_source) imports
# boto3 only when an s3:// source is opened.
__all__ = [
    "FILE_LIST_SUFFIXES",
    "IMG_EXTENSIONS",
    "FfcvFile",
    "FfcvFormatError",
    "FileListError",
    "FileListReader",
    "HuggingFaceError",
    "HuggingFaceReader",
    "ImageFolderReader",
    "LitDataFormatError",
    "LitDataReader",
    "load_hf_dataset",
]
