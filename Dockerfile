FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
# The whole tree, minus .dockerignore: no top-level package can be left out.
COPY . .
# The compose commands write var/ (beat's schedule) and staticfiles/
# (collectstatic) as the app user: those two belong to it, the code does not.
RUN pip install --no-cache-dir . ./shop \
 && useradd --create-home app \
 && mkdir -p /app/var /app/staticfiles \
 && chown -R app /app/var /app/staticfiles
USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
