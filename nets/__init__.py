"""Model factories of this project (`model.arch: nets.<module>:<function>`).

Every stage that builds a model declares this folder as a dep in dvc.yaml, so editing a factory
reruns the stages that used it. See docs/your-model.md.
"""
