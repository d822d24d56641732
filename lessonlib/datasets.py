from lessonlib.runtime import home
