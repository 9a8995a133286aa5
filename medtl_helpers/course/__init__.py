"""The course's own tooling, apart from the machine learning: the command line, the notebook
runner, student copies, Colab links and setup cells, and the exercise checkers (`checks/`)."""
