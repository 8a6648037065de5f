# pulmonode node image (CPU). GPU hosts: swap the torch wheel for a CUDA build.
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends dcmtk dicom3tools poppler-utils && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/pulmonode
COPY pyproject.toml README.md ./
COPY dicom_node dicom_node
COPY ai_engine ai_engine
COPY hl7 hl7
COPY orthanc orthanc
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir .
ENV PULMONODE_DATA_DIR=/var/lib/pulmonode
EXPOSE 11112 8080
CMD ["pulmonode", "serve"]
