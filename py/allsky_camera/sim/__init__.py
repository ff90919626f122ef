"""The project's simulator of raw all-sky exposures, with their truth.

One module per thing rendered, put together by :func:`allsky_camera.sim.simulate.simulate`
(the front, which also re-exports the parts' public names): ``geometry``, ``sky``,
``clouds``, ``psf``, ``stars``, ``streaks``, ``sim_extras``, ``detector``, ``truth``;
``simulate_night`` lays out and renders a whole night.
"""
