"""Privacy protection of whole photos against dlib's face recognizer (see photo.py)."""
