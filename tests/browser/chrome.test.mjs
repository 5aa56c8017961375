import { browserSuite } from './suite.mjs';

browserSuite('chrome');
