"""The Qt front end. The only package allowed to import PySide6, qasync or pyqtgraph."""
