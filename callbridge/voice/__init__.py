"""The old home of ``callbridge.voice.tools``, kept for one release; see ``callbridge.tools``."""
