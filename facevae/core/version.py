"""The version of facevae, recorded beside what it writes (a checkpoint's metadata, a crop cache's manifest).

It lives in the base so that the layers that record it need not import the package above them.
"""

VERSION = "0.1.0"
