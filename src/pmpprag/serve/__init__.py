"""The HTTP server: the course grading contract (/predict) and the OpenAI API (/v1).

Layer 4 (top): it imports rag and generation; nothing in the package imports it.
"""
