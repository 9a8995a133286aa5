# The sandbox for grading a class: student code runs in here. Build it from the repository root,
#
#   docker build -t medtl-grade -f docker/grade.Dockerfile .
#
# and grade with the `docker run` line of docs/TEACHING.md §4 (no network, the submissions
# read-only, only grades/ writable); what follows the image name are `grade`'s arguments.
#
# The image holds the package and the instructor's notebooks, nothing else: no data, no .venv,
# no submissions, no grades (each COPY names what it takes, so no .dockerignore is needed).
# tests/test_repo_files.py checks that every path and command here exists.
FROM python:3.11-slim

# Grading runs on the CPU in the quick profile: torch's CPU build, a fraction of the default
# CUDA build's size. pip then finds torch and torchvision installed and keeps them.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch torchvision

WORKDIR /course
# pyproject.toml names README.md (readme) and LICENSE (license-files): without them the build
# only warns, and the installed package would go without its description and licence.
COPY pyproject.toml README.md LICENSE ./
COPY medtl_helpers/ medtl_helpers/
# [course] brings nbclient and the Jupyter kernel that run the submissions.
RUN pip install --no-cache-dir '.[course]'
# `grade --notebooks` defaults to notebooks/ in the working folder: /course/notebooks.
COPY notebooks/ notebooks/

# Offline even if the container is started with a network; the quick profile, as `grade` uses;
# a HOME any --user can write to (Jupyter and matplotlib keep files there).
ENV MEDTL_OFFLINE=1 MEDTL_PROFILE=quick MPLBACKEND=Agg HOME=/tmp
ENTRYPOINT ["python", "-m", "medtl_helpers", "grade"]
